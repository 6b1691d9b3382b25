import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChildDaemon } from '../helpers/child-daemon.js';
import { pushBusybox } from '../helpers/machines.js';
import type { TestDaemon } from '../helpers/daemon.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test('kill -9 of the daemon: the machine keeps running, is re-adopted with its logs, and leaves no orphan', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'hangar-adopt-'));
  let d = await startChildDaemon(dataDir);
  try {
    await d.api('POST', '/v1/apps', { app_name: 'adopt' });
    const image = await pushBusybox({ daemon: { url: d.url }, adminToken: d.adminToken } as unknown as TestDaemon, 'adopt', 'v1');
    const created = await d.api('POST', '/v1/apps/adopt/machines', {
      config: { image, init: { cmd: ['/bin/sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done'] } },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const id = created.body.id as string;
    const logsHave = (n: number) => async () => {
      const lines = (await d.api('GET', `/v1/apps/adopt/logs?machine_id=${id}&limit=1000`)).body as Array<{ id: number; message: string; timestamp: string }>;
      return lines.some((l) => l.message === `tick ${n}`) ? lines : undefined;
    };
    await until('first ticks', logsHave(2));

    const pid = JSON.parse(readFileSync(join(dataDir, 'machines', id, 'vm.json'), 'utf8')).pid as number;
    await d.kill9();
    assert.ok(alive(pid), 'the VM must survive the daemon');

    d = await startChildDaemon(dataDir);
    const m = (await d.api('GET', `/v1/apps/adopt/machines/${id}`)).body;
    assert.equal(m.state, 'started', JSON.stringify(m));
    // Lines printed while the daemon was down and after it came back arrive, once each.
    const before = (await d.api('GET', `/v1/apps/adopt/logs?machine_id=${id}&limit=1000`)).body as Array<{ message: string }>;
    const highest = Math.max(...before.map((l) => Number(l.message.split(' ')[1])));
    const lines = await until('ticks after re-adoption', logsHave(highest + 4));
    const ticks = lines.map((l) => l.message).filter((s) => s.startsWith('tick '));
    assert.equal(new Set(ticks).size, ticks.length, `no duplicated lines: ${JSON.stringify(lines.map((l) => [l.id, l.message, l.timestamp]))}`);
    const nums = ticks.map((s) => Number(s.split(' ')[1]));
    for (let i = 1; i < nums.length; i++) assert.equal(nums[i], nums[i - 1]! + 1, `no gap: ${nums.join(',')}`);

    const ex = await d.api('POST', `/v1/apps/adopt/machines/${id}/exec`, { command: ['echo', 'adopted'] });
    assert.equal(ex.body.stdout, 'adopted\n');

    // Destroying it (forced) kills the VM: nothing is left behind.
    assert.equal((await d.api('DELETE', `/v1/apps/adopt/machines/${id}?force=true`)).status, 200);
    await until('qemu gone', async () => (alive(pid) ? undefined : true), 30_000);
  } finally {
    await d.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
