import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { run } from '../../src/shared/process.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { blockCount, fsckClean } from './helpers.js';
import { pushBusybox, sh, runMachine, waitState } from '../helpers/machines.js';

const APP = 'live';
const GIB = 1024 ** 3;

// Appends fixed-size records, fsyncs each, and only then reports it.
const WRITER = `
i=0
while :; do
  printf 'record %06d 0123456789abcdef0123456789abcdef\\n' $i >> /data/log
  sync /data/log
  echo "committed $i"
  i=$((i+1))
  usleep 20000
done`;

const record = (i: number) => `record ${String(i).padStart(6, '0')} 0123456789abcdef0123456789abcdef`;

function committed(t: TestDaemon, machineId: string): number {
  const ns = t.daemon.logs.query({ app: APP, machineId, limit: 100_000 }).map((l) => /^committed (\d+)$/.exec(l.message)).filter((x) => x).map((x) => Number(x![1]));
  return ns.length ? Math.max(...ns) : -1;
}

async function waitCommitted(t: TestDaemon, machineId: string, atLeast: number): Promise<number> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const n = committed(t, machineId);
    if (n >= atLeast) return n;
    assert.ok(Date.now() < deadline, `the app did not commit record ${atLeast} in time (last ${n})`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** Records 0..last, intact and in order, at the start of /log in an image. */
async function assertRecords(image: string, last: number): Promise<void> {
  const log = (await run('debugfs', ['-R', 'cat /log', image])).stdout.split('\n');
  for (let i = 0; i <= last; i++) assert.equal(log[i], record(i), `fsync'd record ${i} is in ${image}`);
}

test('a running machine\'s volume: extend grows it online; live snapshot and fork are consistent while the app keeps writing; the guest thaws by itself', { timeout: 600_000 }, async (ctx) => {
  let t = await startTestDaemon();
  const dataDir = t.dataDir;
  try {
    await t.api('POST', '/v1/apps', { app_name: APP });
    const image = await pushBusybox(t, `${APP}/busybox`, 'v1');
    const vol = (await t.api('POST', `/v1/apps/${APP}/volumes`, { name: 'data', size_gb: 1 })).body;
    const img = t.daemon.volumes.imagePath(vol.id);
    const m = await runMachine(t, APP, {
      config: { image, init: { cmd: ['/bin/sh', '-c', WRITER] }, restart: { policy: 'no' }, mounts: [{ volume: vol.id, path: '/data' }] },
    });

    // --- online extend ---------------------------------------------------------
    let r = await sh(t, APP, m, 'dd if=/dev/urandom of=/data/before bs=1M count=4 2>/dev/null && sync && md5sum /data/before && df -k /data | tail -1');
    assert.equal(r.exit_code, 0, r.stderr);
    const [sumBefore, dfBefore] = r.stdout.trim().split('\n');
    assert.ok(Number(dfBefore!.trim().split(/\s+/)[1]) < 1.01 * 1024 * 1024, dfBefore);

    const te = Date.now();
    const ext = await t.api('PUT', `/v1/apps/${APP}/volumes/${vol.id}/extend`, { size_gb: 2 });
    ctx.diagnostic(`online extend 1 -> 2 GB took ${Date.now() - te} ms`);
    assert.equal(ext.status, 200, JSON.stringify(ext.body));
    assert.equal(ext.body.needs_restart, false);
    assert.equal(ext.body.volume.size_gb, 2);
    assert.equal(ext.body.volume.pending_resize, undefined);
    // Shrinking or not growing is still refused, and changes nothing.
    for (const size_gb of [2, 1]) assert.equal((await t.api('PUT', `/v1/apps/${APP}/volumes/${vol.id}/extend`, { size_gb })).status, 400);

    // The new space is there inside the running guest, the old data too, and
    // blocks past the old end of the disk take writes (fallocate of more than
    // the old size, then real data far into it, read back from the disk).
    r = await sh(t, APP, m, [
      'df -k /data | tail -1', 'md5sum /data/before',
      'fallocate -l 1300M /data/big', 'dd if=/dev/urandom of=/tmp/chunk bs=1M count=4 2>/dev/null',
      'dd if=/tmp/chunk of=/data/big bs=1M seek=1290 conv=notrunc,fsync 2>/dev/null', 'echo 3 > /proc/sys/vm/drop_caches',
      'md5sum < /tmp/chunk', 'dd if=/data/big bs=1M skip=1290 count=4 2>/dev/null | md5sum',
    ].join(' && '));
    assert.equal(r.exit_code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    const kb = Number(lines[0]!.trim().split(/\s+/)[1]);
    assert.ok(kb > 1.9 * 1024 * 1024, `df inside the guest shows ~2 GiB after the online extend: ${lines[0]}`);
    assert.equal(lines[1], sumBefore, 'data written before the extend is intact');
    assert.equal(lines[3], lines[2], 'data written past the old end reads back');
    assert.equal((await t.api('GET', `/v1/apps/${APP}/machines/${m}`)).body.state, 'started');

    // --- live snapshot while the app writes --------------------------------------
    const before = await waitCommitted(t, m, 20);
    const t0 = Date.now();
    const snap = await t.api('POST', `/v1/apps/${APP}/volumes/${vol.id}/snapshots`);
    const snapMs = Date.now() - t0;
    ctx.diagnostic(`live snapshot took ${snapMs} ms (records committed before: ${before + 1})`);
    assert.equal(snap.status, 200, JSON.stringify(snap.body));
    const snapImg = t.daemon.volumes.snapshotPath(snap.body.id);
    // Frozen, the guest wrote everything back and checkpointed its journal:
    // the copy is clean without any journal replay, and has the grown size.
    const fsck = await fsckClean(snapImg);
    assert.equal(fsck.clean, true, fsck.output);
    assert.equal(await blockCount(snapImg), (2 * GIB) / 4096);
    await assertRecords(snapImg, before);
    // The app kept running and writing.
    const afterSnap = committed(t, m);
    await waitCommitted(t, m, afterSnap + 10);
    assert.equal((await t.api('GET', `/v1/apps/${APP}/machines/${m}`)).body.state, 'started');

    // Fork of the in-use volume, and a restore of the snapshot.
    const beforeFork = committed(t, m);
    const fork = await t.api('POST', `/v1/apps/${APP}/volumes`, { name: 'copy', source_volume_id: vol.id });
    assert.equal(fork.status, 200, JSON.stringify(fork.body));
    await assertRecords(t.daemon.volumes.imagePath(fork.body.id), beforeFork);
    const restored = await t.api('POST', `/v1/apps/${APP}/volumes`, { name: 'restored', snapshot_id: snap.body.id });
    assert.equal(restored.status, 200, JSON.stringify(restored.body));
    assert.equal((await fsckClean(t.daemon.volumes.imagePath(restored.body.id))).clean, true);
    // Bad input stays an error with a running holder too.
    assert.equal((await t.api('POST', `/v1/apps/${APP}/volumes/vol_missing/snapshots`)).status, 404);

    // --- the guest thaws by itself -----------------------------------------------
    // Held past its hold time: the init thaws, writers go on, and the
    // release reports the hold as lost (a copy made meanwhile is refused).
    const release = await t.daemon.machines.holdVolume(m, img, 4000);
    const t1 = Date.now();
    r = await sh(t, APP, m, 'touch /data/while-frozen && sync /data/while-frozen && echo ok');
    assert.equal(r.stdout, 'ok\n');
    // (The hold counts from the freeze, a moment before holdVolume resolved.)
    assert.ok(Date.now() - t1 >= 2000, `writes waited for the thaw (${Date.now() - t1} ms)`);
    await assert.rejects(release(), /thawed the volume before the copy was complete/);

    // The host goes away mid-freeze (daemon shutdown): the guest thaws at once,
    // long before the 10-minute hold, and the adopted machine keeps writing.
    await t.daemon.machines.holdVolume(m, img, 600_000);
    await t.daemon.close();
    t = await startTestDaemon({ dataDir });
    const t2 = Date.now();
    r = await sh(t, APP, m, 'touch /data/after-host-gone && sync /data/after-host-gone && echo ok');
    assert.equal(r.stdout, 'ok\n');
    assert.ok(Date.now() - t2 < 60_000, `the guest thawed when the host went away (${Date.now() - t2} ms)`);
    const now = committed(t, m);
    await waitCommitted(t, m, now + 5);

    // --- the restored volume mounts in a machine --------------------------------
    const m2 = await runMachine(t, APP, {
      config: { image, init: { cmd: ['/bin/sh', '-c', 'sleep 100000'] }, restart: { policy: 'no' }, mounts: [{ volume: restored.body.id, path: '/data' }] },
    });
    r = await sh(t, APP, m2, `grep -c "^record" /data/log; sed -n ${before + 1}p /data/log; md5sum /data/before; df -k /data | tail -1`);
    const out = r.stdout.trim().split('\n');
    assert.ok(Number(out[0]) >= before + 1);
    assert.equal(out[1], record(before));
    assert.equal(out[2], sumBefore);
    assert.ok(Number(out[3]!.trim().split(/\s+/)[1]) > 1.9 * 1024 * 1024);
    assert.ok(snapMs < 120_000);

    // A volume its guest no longer has mounted (a root app unmounted it) is
    // copied with the VM paused instead (QMP stop/cont); the VM runs on after.
    r = await sh(t, APP, m2, 'umount /data && echo unmounted');
    assert.equal(r.stdout, 'unmounted\n', r.stderr);
    const paused = await t.api('POST', `/v1/apps/${APP}/volumes/${restored.body.id}/snapshots`);
    assert.equal(paused.status, 200, JSON.stringify(paused.body));
    await assertRecords(t.daemon.volumes.snapshotPath(paused.body.id), before);
    assert.equal((await sh(t, APP, m2, 'echo running')).stdout, 'running\n');
    await waitState(t, APP, m, 'started');
  } finally {
    for (const mm of t.daemon.machines.list(APP)) await t.daemon.machines.destroy(APP, mm.id, true).catch(() => {});
    await t.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
