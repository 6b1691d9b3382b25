import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adoptVm, findGuestArtifacts, reconcileVms, startVm, type VmSpec } from '../../src/vm/index.js';
import { encodeRecords } from '../../src/vm/records.js';
import { procStartTime } from '../../src/vm/state.js';
import { BOOT_TIMEOUT_MS, collectLogs, makeRootfs, tempDir, withTimeout } from './fixtures.js';

const CHILD = fileURLToPath(new URL('./helpers/vm-child.js', import.meta.url));

test('a VM outlives its SIGKILLed daemon; reconcile adopts it and kills stray qemu; logs, exec and signals work after adoption', { timeout: 600_000 }, async () => {
  findGuestArtifacts();
  const dir = tempDir();
  const root = join(dir, 'machines');
  let qemuPid = 0;
  let stray: ReturnType<typeof spawn> | undefined;
  try {
    const rootfs = await makeRootfs(dir, 'bb');
    const spec: VmSpec = {
      id: 'adopt-1', stateDir: join(root, 'adopt-1'), rootfs,
      run: { image: { cmd: ['/bin/sh', '-c', 'trap "" TERM; echo ready; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.3; done'] } },
    };
    const child = spawn(process.execPath, [CHILD], { env: { ...process.env, HANGAR_VM_CHILD_SPEC: JSON.stringify(spec) }, stdio: ['ignore', 'pipe', 'inherit'] });
    const first = await withTimeout(new Promise<{ pid: number; offset: number }>((resolve, reject) => {
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => { buf += d; const nl = buf.indexOf('\n'); if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl))); });
      child.once('exit', (c) => reject(new Error(`child exited early (${c})`)));
    }), BOOT_TIMEOUT_MS, 'child VM ready');
    qemuPid = first.pid;
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await new Promise((r) => setTimeout(r, 800));
    assert.ok(procStartTime(qemuPid), 'qemu keeps running after its daemon was SIGKILLed');

    // a Hangar-named process under the root that no state dir accounts for
    const strayDir = join(root, 'stray');
    mkdirSync(strayDir, { recursive: true });
    stray = spawn('/bin/sh', ['-c', 'sleep 120; :', '-name', 'hangar-stray'], { cwd: strayDir, detached: true, stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 200));

    const res = await reconcileVms(root, (id) => id === 'adopt-1');
    assert.equal(res.adopted.length, 1);
    assert.deepEqual(res.killed, [stray.pid]);
    assert.equal(procStartTime(stray.pid!), undefined, 'the stray process was killed');
    const h = res.adopted[0]!;
    assert.equal(h.pid, qemuPid);
    // Attach late on purpose: a listener added at any time still sees the
    // log from its start (handles follow their files from the first listener).
    await new Promise((r) => setTimeout(r, 1000));
    const logs = collectLogs(h);
    await withTimeout(h.waitStarted(), 60_000, 'adopted VM reports started');
    // the log file is replayed from the start, and new lines keep coming
    const before = logs.lines.length;
    await logs.waitFor((l) => l.line === 'ready');
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(logs.lines.length > before, 'new log lines after adoption');
    const e = await h.exec(['sh', '-c', 'echo adopted']);
    assert.equal(e.stdout, 'adopted\n');
    await h.signal('TERM');
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal((await h.status()).state, 'running', 'SIGTERM was trapped');
    await h.signal('SIGKILL');
    const exit = await withTimeout(h.waitExit(), 60_000, 'exit');
    assert.deepEqual([exit.reason, exit.exitCode, exit.signal], ['exited', 137, 9]);
    assert.equal(procStartTime(qemuPid), undefined);

    // resuming at an offset skips what was already stored
    const h2 = await adoptVm(spec.stateDir, { logOffset: first.offset });
    const logs2 = collectLogs(h2);
    const exit2 = await h2.waitExit();
    await new Promise((r) => setImmediate(r));
    assert.equal(exit2.exitCode, 137);
    assert.ok(!logs2.text().includes('ready'));
    await h2.dispose();
  } finally {
    if (qemuPid && procStartTime(qemuPid)) process.kill(-qemuPid, 'SIGKILL');
    if (stray?.pid && procStartTime(stray.pid)) process.kill(-stray.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('opt-in orphan timeout: a VM nobody watches stops itself; a watched one keeps running', { timeout: 300_000 }, async () => {
  findGuestArtifacts();
  const dir = tempDir();
  let pid = 0;
  try {
    const rootfs = await makeRootfs(dir, 'bb');
    const stateDir = join(dir, 'vm');
    const h = await startVm({ id: 'orphan', stateDir, rootfs, orphanTimeoutMs: 3000, run: { image: { cmd: ['/bin/sh', '-c', 'echo ready; while :; do sleep 0.2; done'] } } });
    pid = h.pid;
    const logs = collectLogs(h);
    await logs.waitFor((l) => l.line === 'ready');
    await new Promise((r) => setTimeout(r, 4500));
    assert.equal((await h.status()).state, 'running', 'connected: the timeout does not fire');
    h.detach();
    for (let i = 0; i < 600 && procStartTime(pid); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(procStartTime(pid), undefined, 'the unwatched VM stopped by itself');
    const again = await adoptVm(stateDir);
    const logs2 = collectLogs(again);
    const exit = await again.waitExit();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([exit.reason, exit.exitCode, exit.signal], ['exited', 137, 9]);
    assert.ok(logs2.text('init').some((l) => /orphan timeout/.test(l)), logs2.text('init').join(' | '));
    await again.dispose();
  } finally {
    if (pid && procStartTime(pid)) process.kill(-pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('adopting a VM that stopped while no daemon watched reports the exit and its reason', async () => {
  const dir = tempDir();
  try {
    const meta = (id: string) => ({ version: 1, driver: 'qemu', id, pid: 2 ** 22 + 12345, pidStartTime: '1', accel: 'tcg', ports: [], startedAt: Date.now() });
    const a = join(dir, 'a');
    mkdirSync(a);
    writeFileSync(join(a, 'vm.json'), JSON.stringify(meta('a')));
    writeFileSync(join(a, 'logs.rec'), encodeRecords([['o', 'last words'], ['x', '3 0 0 -']]));
    const ha = await adoptVm(a);
    const ea = await ha.waitExit();
    assert.deepEqual([ea.reason, ea.exitCode], ['exited', 3]);

    const b = join(dir, 'b');
    mkdirSync(b);
    writeFileSync(join(b, 'vm.json'), JSON.stringify(meta('b')));
    writeFileSync(join(b, 'console.log'), 'Kernel panic - not syncing: boom\n');
    const hb = await adoptVm(b);
    const eb = await hb.waitExit();
    assert.equal(eb.reason, 'crashed');
    assert.equal(eb.exitCode, null);
    assert.match(eb.message, /without an exit report.*Kernel panic/s);
    assert.equal((await hb.status()).state, 'stopped');
    await assert.rejects(adoptVm(join(dir, 'none')), /no VM state/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
