import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/index.js';
import { createLogger } from '../../src/shared/log.js';
import { HangarError } from '../../src/shared/errors.js';
import { Volumes } from '../../src/volumes/index.js';
import { machineConfigSchema, type MachineConfig } from '../../src/machines/index.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { runCli } from '../secrets/helpers.js';
import { blockCount, catFile, fsckClean, putFile } from './helpers.js';

const quiet = createLogger(() => {});
const GIB = 1024 ** 3;
const cfg = (mounts: { volume: string; path: string }[]): MachineConfig => ({ image: 'x', mounts }) as MachineConfig;

function setup(machines: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-vol-'));
  const store = openStore(dir);
  const volumes = new Volumes({ store, dataDir: dir, log: quiet, machineState: (id) => machines[id] });
  return { dir, store, volumes, machines, close: () => (store.close(), rmSync(dir, { recursive: true, force: true })) };
}

test('create makes a sparse, clean ext4 image of the requested size', async () => {
  const t = setup();
  try {
    const v = await t.volumes.create('web', { name: 'data', size_gb: 3 });
    assert.match(v.id, /^vol_[0-9a-f]{14}$/);
    const img = t.volumes.imagePath(v.id);
    const st = statSync(img);
    assert.equal(st.size, 3 * GIB);
    assert.ok(st.blocks * 512 < 64 * 1024 ** 2, `sparse: ${st.blocks * 512} bytes allocated`);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal((await fsckClean(img)).clean, true);
    assert.equal(await blockCount(img), (3 * GIB) / 4096);
    assert.deepEqual(t.volumes.list('web').map((x) => x.id), [v.id]);
    assert.deepEqual(t.volumes.list('other'), []);
    assert.equal(t.volumes.get('web', 'data').id, v.id, 'lookup by a unique name');
  } finally {
    t.close();
  }
});

test('bad input: names, sizes, missing snapshot/source: clear errors, nothing created', async () => {
  const t = setup();
  try {
    const bad: Array<[Parameters<Volumes['create']>[1], RegExp]> = [
      [{ name: 'Data' }, /lowercase/],
      [{ name: 'a-b' }, /lowercase/],
      [{ name: 'x'.repeat(31) }, /1-30/],
      [{ name: '' }, /1-30/],
      [{ name: 'ok', size_gb: 0 }, /at least 1/],
      [{ name: 'ok', size_gb: 501 }, /at most 500/],
      [{ name: 'ok', size_gb: 1.5 }, /whole number/],
      [{ name: 'ok', snapshot_id: 'vs_nope' }, /snapshot vs_nope not found/],
      [{ name: 'ok', source_volume_id: 'vol_nope' }, /volume vol_nope not found/],
      [{ name: 'ok', snapshot_id: 'a', source_volume_id: 'b' }, /not both/],
    ];
    for (const [input, msg] of bad) {
      await assert.rejects(t.volumes.create('web', input), (e: HangarError) => {
        assert.ok(e.status === 400 || e.status === 404, `${e.status} ${e.message}`);
        assert.match(e.message, msg);
        return true;
      });
    }
    await assert.rejects(t.volumes.createSnapshot('web', 'vol_missing'), (e: HangarError) => e.status === 404 && /not found/.test(e.message));
    assert.deepEqual(t.volumes.list('web'), []);
    assert.deepEqual(readdirSync(join(t.dir, 'volumes')), ['snapshots']);
    assert.deepEqual(readdirSync(join(t.dir, 'volumes', 'snapshots')), []);
  } finally {
    t.close();
  }
});

test('mount paths: / and /proc (and /sys, /dev, ..) are refused by the config schema and at attach', async () => {
  for (const path of ['/', '/proc', '/proc/self', '/sys/x', '/dev', 'data', '/a/../b', '//data']) {
    const r = machineConfigSchema.safeParse({ image: 'x', mounts: [{ volume: 'data', path }] });
    assert.equal(r.success, false, path);
  }
  assert.equal(machineConfigSchema.safeParse({ image: 'x', mounts: [{ volume: 'data', path: '/data' }] }).success, true);
  assert.equal(machineConfigSchema.safeParse({ image: 'x', mounts: [{ volume: 'data', path: '/var/lib/proc' }] }).success, true);

  const t = setup({ m1: 'starting' });
  try {
    const v = await t.volumes.create('web', { name: 'data' });
    for (const path of ['/', '/proc', '/proc/1', '/dev/shm']) {
      assert.throws(() => t.volumes.attach('web', 'm1', cfg([{ volume: 'data', path }])), (e: HangarError) => e.status === 400 && /mount path/.test(e.message));
    }
    assert.throws(() => t.volumes.attach('web', 'm1', cfg([{ volume: 'nope', path: '/data' }])), (e: HangarError) => e.status === 404 && /hangar volumes create nope/.test(e.message));
    assert.equal(t.volumes.get('web', v.id).attached_machine_id, null, 'failed attaches took no lock');
  } finally {
    t.close();
  }
});

test('attach lock: one machine at a time, kept until that machine is destroyed; destroy refused while attached', async () => {
  const t = setup({ m1: 'starting', m2: 'starting' });
  try {
    const v = await t.volumes.create('web', { name: 'data' });
    const mounts = t.volumes.attach('web', 'm1', cfg([{ volume: 'data', path: '/data/' }]));
    assert.deepEqual(mounts, [{ imagePath: t.volumes.imagePath(v.id), guestPath: '/data', volumeId: v.id }]);
    // Re-attach by the holder (restart, update) is fine.
    t.volumes.attach('web', 'm1', cfg([{ volume: v.id, path: '/data' }]));

    assert.throws(() => t.volumes.attach('web', 'm2', cfg([{ volume: v.id, path: '/data' }])), (e: HangarError) => {
      assert.equal(e.status, 409);
      assert.equal(e.code, 'VOLUME_IN_USE');
      assert.match(e.message, new RegExp(`attached to machine m1`));
      return true;
    });
    // Stopped still holds it (Fly semantics).
    t.machines.m1 = 'stopped';
    t.volumes.detach('m1');
    assert.throws(() => t.volumes.attach('web', 'm2', cfg([{ volume: 'data', path: '/data' }])), /attached to machine m1/);
    await assert.rejects(t.volumes.destroy('web', v.id), (e: HangarError) => e.status === 409 && /destroy that machine first/.test(e.message));
    assert.ok(existsSync(t.volumes.imagePath(v.id)));

    // All or nothing: a second, free volume is not taken when the first is held.
    const free = await t.volumes.create('web', { name: 'extra' });
    assert.throws(() => t.volumes.attach('web', 'm2', cfg([{ volume: 'extra', path: '/x' }, { volume: 'data', path: '/data' }])), /attached to machine m1/);
    assert.equal(t.volumes.get('web', free.id).attached_machine_id, null);

    // Holder destroyed: the lock is stale and released.
    t.machines.m1 = 'destroyed';
    t.volumes.detach('m1');
    assert.equal(t.volumes.get('web', v.id).attached_machine_id, null);
    t.volumes.attach('web', 'm2', cfg([{ volume: 'data', path: '/data' }]));
    assert.equal(t.volumes.get('web', v.id).attached_machine_id, 'm2');
    // m2's config drops the mount: its lock goes at the next attach.
    t.volumes.attach('web', 'm2', cfg([]));
    assert.equal(t.volumes.get('web', v.id).attached_machine_id, null);
    const gone = await t.volumes.destroy('web', v.id);
    assert.equal(gone.state, 'destroyed');
    assert.equal(existsSync(t.volumes.imagePath(v.id)), false);
    assert.throws(() => t.volumes.get('web', v.id), /not found/);
  } finally {
    t.close();
  }
});

test('mounting by name picks a free volume of that name; overlapping paths are refused', async () => {
  const t = setup({ m1: 'started', m2: 'started', m3: 'started' });
  try {
    const a = await t.volumes.create('web', { name: 'data' });
    const b = await t.volumes.create('web', { name: 'data' });
    assert.equal(t.volumes.attach('web', 'm1', cfg([{ volume: 'data', path: '/data' }]))[0]!.volumeId, a.id);
    assert.equal(t.volumes.attach('web', 'm2', cfg([{ volume: 'data', path: '/data' }]))[0]!.volumeId, b.id);
    assert.throws(() => t.volumes.attach('web', 'm3', cfg([{ volume: 'data', path: '/data' }])), (e: HangarError) => e.code === 'VOLUME_IN_USE');
    assert.throws(() => t.volumes.get('web', 'data'), /2 volumes named data/);
    const c = await t.volumes.create('web', { name: 'logs' });
    assert.throws(() => t.volumes.attach('web', 'm3', cfg([{ volume: c.id, path: '/srv' }, { volume: 'x', path: '/srv/sub' }])), /overlap/);
  } finally {
    t.close();
  }
});

test('extend: offline grows the filesystem now; in use and no online path: it grows at the next attach; shrinking is refused', async () => {
  const t = setup({ m1: 'stopped' });
  try {
    const v = await t.volumes.create('web', { name: 'data', size_gb: 1 });
    const img = t.volumes.imagePath(v.id);
    await putFile(img, 'keep.txt', 'before extend');
    const r = await t.volumes.extend('web', v.id, 2);
    assert.equal(r.needs_restart, false);
    assert.equal(r.volume.size_gb, 2);
    assert.equal(await blockCount(img), (2 * GIB) / 4096);
    assert.equal((await fsckClean(img)).clean, true);
    assert.equal(await catFile(img, 'keep.txt'), 'before extend');

    for (const [size, msg] of [[2, /larger than/], [1, /larger than/], [501, /at most 500/]] as const) {
      await assert.rejects(t.volumes.extend('web', v.id, size), (e: HangarError) => e.status === 400 && msg.test(e.message));
    }
    assert.equal(t.volumes.get('web', v.id).size_gb, 2);

    // Attached to a running machine that cannot grow it online (no growOnline
    // hook here): the file grows, the fs waits for the next boot.
    t.volumes.attach('web', 'm1', cfg([{ volume: 'data', path: '/data' }]));
    t.machines.m1 = 'started';
    const online = await t.volumes.extend('web', v.id, 3);
    assert.equal(online.needs_restart, true);
    assert.equal(statSync(img).size, 3 * GIB);
    assert.equal(await blockCount(img), (2 * GIB) / 4096);
    t.machines.m1 = 'starting';
    t.volumes.attach('web', 'm1', cfg([{ volume: 'data', path: '/data' }]));
    assert.equal(await blockCount(img), (3 * GIB) / 4096);
    assert.equal(t.volumes.get('web', v.id).fs_size_gb, 3);
    assert.equal(await catFile(img, 'keep.txt'), 'before extend');
  } finally {
    t.close();
  }
});

test('snapshots are point-in-time copies; restore and fork; running holders are not copied torn', async () => {
  const t = setup({ m1: 'stopped' });
  try {
    const v = await t.volumes.create('web', { name: 'data', size_gb: 1 });
    const img = t.volumes.imagePath(v.id);
    await putFile(img, 'a.txt', 'version one');
    const snap = await t.volumes.createSnapshot('web', v.id);
    assert.match(snap.id, /^vs_/);
    assert.equal(snap.volume_id, v.id);
    assert.ok(snap.size > 0 && snap.size < 64 * 1024 ** 2, 'sparse copy');
    await putFile(img, 'b.txt', 'after the snapshot');

    const restored = await t.volumes.create('web', { name: 'restored', snapshot_id: snap.id, size_gb: 2 });
    const rimg = t.volumes.imagePath(restored.id);
    assert.equal(await catFile(rimg, 'a.txt'), 'version one');
    assert.equal(await catFile(rimg, 'b.txt'), undefined, 'later writes are not in the snapshot');
    assert.equal(await blockCount(rimg), (2 * GIB) / 4096, 'restored into a bigger volume');
    assert.equal(restored.source, snap.id);

    const fork = await t.volumes.create('web', { name: 'data', source_volume_id: v.id });
    assert.equal(await catFile(t.volumes.imagePath(fork.id), 'b.txt'), 'after the snapshot');
    // The fork is independent of its source.
    await putFile(t.volumes.imagePath(fork.id), 'c.txt', 'fork only');
    assert.equal(await catFile(img, 'c.txt'), undefined);
    await assert.rejects(t.volumes.create('web', { name: 'small', snapshot_id: snap.id, size_gb: 1 }).then(() => t.volumes.create('web', { name: 'x', source_volume_id: restored.id, size_gb: 1 })), /at least 2 GB/);

    // Held by a running machine and no way to pause it: refuse rather than copy a torn image.
    t.volumes.attach('web', 'm1', cfg([{ volume: v.id, path: '/data' }]));
    t.machines.m1 = 'started';
    await assert.rejects(t.volumes.createSnapshot('web', v.id), (e: HangarError) => e.status === 409 && /Stop the machine/.test(e.message));

    assert.deepEqual(t.volumes.listSnapshots('web', v.id).map((s) => s.id), [snap.id]);
    assert.throws(() => t.volumes.listSnapshots('web', 'vol_nope'), /not found/);
    // Snapshots outlive their volume until they expire.
    t.machines.m1 = 'destroyed';
    await t.volumes.destroy('web', v.id);
    assert.deepEqual(t.volumes.listSnapshots('web', v.id).map((s) => s.id), [snap.id]);
    assert.equal(statSync(t.volumes.snapshotPath(snap.id)).mode & 0o777, 0o400);
  } finally {
    t.close();
  }
});

test('quiesce hook: a running holder is paused around the copy', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-vol-'));
  const store = openStore(dir);
  const events: string[] = [];
  try {
    const volumes = new Volumes({
      store, dataDir: dir, log: quiet, machineState: () => 'started',
      quiesce: async (id) => (events.push(`pause ${id}`), async () => void events.push(`resume ${id}`)),
    });
    const v = await volumes.create('web', { name: 'data' });
    volumes.attach('web', 'm1', cfg([{ volume: v.id, path: '/data' }]));
    await volumes.createSnapshot('web', v.id);
    assert.deepEqual(events, ['pause m1', 'resume m1']);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('volumes API and CLI in Fly shapes; state survives a daemon restart', async () => {
  const t = await startTestDaemon();
  let again: Awaited<ReturnType<typeof startTestDaemon>> | undefined;
  try {
    await t.api('POST', '/v1/apps', { app_name: 'web' });
    const c = await t.api('POST', '/v1/apps/web/volumes', { name: 'pg_data', size_gb: 2 });
    assert.equal(c.status, 200, JSON.stringify(c.body));
    for (const k of ['id', 'name', 'state', 'size_gb', 'region', 'zone', 'encrypted', 'fstype', 'attached_machine_id', 'created_at', 'block_size', 'blocks', 'blocks_free', 'blocks_avail', 'snapshot_retention']) {
      assert.ok(k in c.body, k);
    }
    assert.equal(c.body.blocks, (2 * GIB) / 4096);
    const id = c.body.id as string;

    for (const [body, msg] of [[{ name: 'Bad!' }, /name/], [{ name: 'ok', size_gb: 0 }, /size_gb/], [{ name: 'ok', size_gb: 9999 }, /size_gb/], [{ size_gb: 1 }, /name/]] as const) {
      const r = await t.api('POST', '/v1/apps/web/volumes', body);
      assert.equal(r.status, 400);
      assert.match(r.body.error, msg);
    }
    assert.equal((await t.api('GET', '/v1/apps/web/volumes')).body.length, 1);
    assert.equal((await t.api('POST', '/v1/apps/web/volumes/vol_missing/snapshots')).status, 404);
    assert.equal((await t.api('GET', '/v1/apps/web/volumes/vol_missing')).status, 404);
    assert.equal((await t.api('PUT', `/v1/apps/web/volumes/${id}/extend`, { size_gb: 1 })).status, 400);
    const ext = await t.api('PUT', `/v1/apps/web/volumes/${id}/extend`, { size_gb: 3 });
    assert.equal(ext.status, 200);
    assert.equal(ext.body.volume.size_gb, 3);
    assert.equal(ext.body.needs_restart, false);
    const upd = await t.api('POST', `/v1/apps/web/volumes/${id}`, { snapshot_retention: 10 });
    assert.equal(upd.status, 200);
    assert.equal(upd.body.snapshot_retention, 10);
    assert.equal((await t.api('POST', `/v1/apps/web/volumes/${id}`, { snapshot_retention: 61 })).status, 400);
    const snap = await t.api('POST', `/v1/apps/web/volumes/${id}/snapshots`);
    assert.equal(snap.status, 200);
    for (const k of ['id', 'digest', 'size', 'status', 'created_at']) assert.ok(k in snap.body, k);

    // CLI.
    const env = { HANGAR_API_URL: t.daemon.url, HANGAR_ACCESS_TOKEN: t.adminToken };
    let r = await runCli(['volumes', 'create', 'cache', '-s', '1', '-a', 'web'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Volume vol_\w+ \(cache\)/);
    r = await runCli(['volumes', 'list', '-a', 'web'], env);
    assert.match(r.stdout, /ID\s+STATE\s+NAME\s+SIZE/);
    assert.match(r.stdout, /pg_data\s+3GB/);
    r = await runCli(['volumes', 'fork', id, '-a', 'web', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const forked = JSON.parse(r.stdout);
    assert.equal(forked.source, id);
    r = await runCli(['volumes', 'snapshots', 'list', id, '-a', 'web'], env);
    assert.match(r.stdout, new RegExp(snap.body.id));
    r = await runCli(['volumes', 'create', 'BAD', '-a', 'web'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /lowercase letters/);
    r = await runCli(['volumes', 'destroy', forked.id, '-a', 'web'], env);
    assert.equal(r.code, 2, 'destroy without a TTY needs --yes');
    r = await runCli(['volumes', 'destroy', forked.id, '-a', 'web', '--yes'], env);
    assert.equal(r.code, 0, r.stderr);

    await t.daemon.close();
    again = await startTestDaemon({ dataDir: t.dataDir });
    const after = await again.api('GET', '/v1/apps/web/volumes');
    assert.deepEqual(after.body.map((v: { name: string }) => v.name).sort(), ['cache', 'pg_data']);
    assert.equal((await again.api('GET', `/v1/apps/web/volumes/${id}/snapshots`)).body.length, 1);
  } finally {
    await again?.daemon.close();
    await t.close();
  }
});

test('snapshot retention: update changes it; expired snapshots are pruned with their files', async () => {
  const t = setup();
  try {
    const v = await t.volumes.create('web', { name: 'data', snapshot_retention: 2 });
    assert.equal(t.volumes.update('web', v.id, { snapshot_retention: 7 }).snapshot_retention, 7);
    const keep = await t.volumes.createSnapshot('web', v.id);
    const old = await t.volumes.createSnapshot('web', v.id);
    assert.ok(Date.parse(keep.expires_at) - Date.parse(keep.created_at) === 7 * 86_400_000);
    // Age one snapshot past its retention.
    t.store.db.prepare('UPDATE volume_snapshots SET expires_at = ? WHERE id = ?').run(new Date(Date.now() - 1000).toISOString(), old.id);
    assert.deepEqual(t.volumes.listSnapshots('web', v.id).map((s) => s.id), [keep.id]);
    assert.equal(existsSync(t.volumes.snapshotPath(old.id)), false);
    assert.ok(existsSync(t.volumes.snapshotPath(keep.id)));
    await assert.rejects(t.volumes.create('web', { name: 'x', snapshot_id: old.id }), /not found/);
  } finally {
    t.close();
  }
});

test('online hooks: a grown-online volume has nothing pending; a failed online grow falls back to the next boot; a lost hold fails the copy and leaves nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-vol-'));
  const store = openStore(dir);
  const calls: string[] = [];
  let growResult: boolean | Error = true;
  let holdLost = false;
  try {
    const volumes = new Volumes({
      store, dataDir: dir, log: quiet, machineState: () => 'started',
      growOnline: async (id, v, bytes) => {
        calls.push(`grow ${id} ${v.id} ${bytes} ${statSync(v.imagePath).size}`);
        if (growResult instanceof Error) throw growResult;
        return growResult;
      },
      quiesce: async (id, v) => {
        calls.push(`hold ${id} ${v.id} ${v.holdMs >= 60_000}`);
        return async () => {
          calls.push('release');
          if (holdLost) throw new HangarError('VOLUME_HOLD_LOST', 'the guest thawed the volume before the copy was complete; try again', { status: 409 });
        };
      },
    });
    const v = await volumes.create('web', { name: 'data', size_gb: 1 });
    volumes.attach('web', 'm1', cfg([{ volume: v.id, path: '/data' }]));

    let r = await volumes.extend('web', v.id, 2);
    assert.equal(r.needs_restart, false);
    assert.equal(r.volume.fs_size_gb, 2);
    // The file had its new size before the machine was asked.
    assert.deepEqual(calls, [`grow m1 ${v.id} ${2 * GIB} ${2 * GIB}`]);

    growResult = new Error('guest said no');
    r = await volumes.extend('web', v.id, 3);
    assert.equal(r.needs_restart, true);
    assert.equal(r.volume.size_gb, 3);
    assert.equal(r.volume.fs_size_gb, 2, 'the filesystem grows at the next boot');
    growResult = false;
    assert.equal((await volumes.extend('web', v.id, 4)).needs_restart, true);

    calls.length = 0;
    const snap = await volumes.createSnapshot('web', v.id);
    assert.deepEqual(calls, [`hold m1 ${v.id} true`, 'release']);
    holdLost = true;
    await assert.rejects(volumes.createSnapshot('web', v.id), (e: HangarError) => e.code === 'VOLUME_HOLD_LOST' && e.status === 409);
    await assert.rejects(volumes.create('web', { name: 'fork', source_volume_id: v.id }), (e: HangarError) => e.code === 'VOLUME_HOLD_LOST');
    assert.deepEqual(volumes.listSnapshots('web', v.id).map((s) => s.id), [snap.id]);
    assert.deepEqual(readdirSync(join(dir, 'volumes', 'snapshots')), [`${snap.id}.ext4`]);
    assert.deepEqual(volumes.list('web').map((x) => x.id), [v.id]);
    assert.deepEqual(readdirSync(join(dir, 'volumes')).sort(), ['snapshots', `${v.id}.ext4`]);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
