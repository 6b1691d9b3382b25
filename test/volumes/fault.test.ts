import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/shared/process.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { fsckClean } from './helpers.js';
import { pushBusybox, runMachine, waitState } from '../helpers/machines.js';

const APP = 'crashy';

// The app appends fixed-size records, fsyncs each one and only then reports
// it as committed, while a second loop keeps the disk busy with bulk writes.
const WRITER = `
( n=0; while :; do dd if=/dev/zero of=/data/bulk bs=64k count=64 conv=notrunc 2>/dev/null; n=$((n+1)); echo "bulk $n"; done ) &
i=0
while :; do
  printf 'record %06d 0123456789abcdef0123456789abcdef\\n' $i >> /data/log
  sync /data/log
  echo "committed $i"
  i=$((i+1))
done`;

test('kill -9 of qemu during heavy fsync\'d writes: fsck finds the volume clean and every committed record is there', { timeout: 600_000 }, async (ctx) => {
  const t = await startTestDaemon();
  try {
    await t.api('POST', '/v1/apps', { app_name: APP });
    const image = await pushBusybox(t, `${APP}/busybox`, 'v1');
    const vol = (await t.api('POST', `/v1/apps/${APP}/volumes`, { name: 'data', size_gb: 1 })).body;
    const m = await runMachine(t, APP, {
      config: { image, init: { cmd: ['/bin/sh', '-c', WRITER] }, restart: { policy: 'no' }, mounts: [{ volume: vol.id, path: '/data' }] },
    });

    const committed = () => t.daemon.logs.query({ app: APP, machineId: m, limit: 10_000 }).map((l) => /^committed (\d+)$/.exec(l.message)).filter((x) => x).map((x) => Number(x![1]));
    const deadline = Date.now() + 240_000;
    // Kill once records are committing AND bulk rounds are going on.
    const bulkRounds = () => t.daemon.logs.query({ app: APP, machineId: m, limit: 10_000 }).filter((l) => /^bulk \d+$/.test(l.message)).length;
    while (committed().length < 40 || bulkRounds() < 2) {
      assert.ok(Date.now() < deadline, `the writers did not get going in time (${committed().length} records, ${bulkRounds()} bulk rounds)`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const pid = JSON.parse(readFileSync(join(t.dataDir, 'machines', m, 'vm.json'), 'utf8')).pid as number;
    process.kill(pid, 'SIGKILL');
    await waitState(t, APP, m, 'stopped');
    const seen = committed();
    const last = Math.max(...seen);
    assert.ok(last >= 39);

    const img = t.daemon.volumes.imagePath(vol.id);
    const raw = await run('e2fsck', ['-f', '-n', img], { allowFailure: true });
    ctx.diagnostic(`${last + 1} records committed and ${bulkRounds()} bulk rounds before the kill; e2fsck -fn before journal replay: exit ${raw.code}: ${(raw.stdout + raw.stderr).replace(/\s+/g, ' ').slice(0, 600)}`);
    // The kernel left the journal to replay (as a crash does); e2fsck replays
    // it exactly as the next mount would, then the full read-only check must
    // find nothing to fix.
    const replay = await run('e2fsck', ['-E', 'journal_only', '-y', img], { allowFailure: true });
    assert.ok(replay.code <= 1, `journal replay: exit ${replay.code}: ${replay.stdout}${replay.stderr}`);
    const fsck = await fsckClean(img);
    assert.equal(fsck.clean, true, fsck.output);

    const log = (await run('debugfs', ['-R', 'cat /log', img])).stdout.split('\n');
    for (let i = 0; i <= last; i++) {
      assert.equal(log[i], `record ${String(i).padStart(6, '0')} 0123456789abcdef0123456789abcdef`, `committed record ${i} is intact`);
    }

    // And the machine boots again on the recovered volume.
    assert.equal((await t.api('POST', `/v1/apps/${APP}/machines/${m}/start`)).status, 200);
    await waitState(t, APP, m, 'started');
  } finally {
    for (const mm of t.daemon.machines.list(APP)) await t.daemon.machines.destroy(APP, mm.id, true).catch(() => {});
    await t.close();
  }
});
