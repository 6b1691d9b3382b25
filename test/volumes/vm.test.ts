import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { fsckClean } from './helpers.js';
import { pushBusybox, sh, runMachine, waitState } from '../helpers/machines.js';

const APP = 'web';

test('data on a volume survives restart, stop/start, update and a daemon restart; data on / does not', { timeout: 600_000 }, async () => {
  let t: TestDaemon = await startTestDaemon();
  const dataDir = t.dataDir;
  try {
    await t.api('POST', '/v1/apps', { app_name: APP });
    const image = await pushBusybox(t, `${APP}/busybox`, 'v1');
    // v2 runs as nobody: the init hands the volume root to the app's user.
    const image2 = await pushBusybox(t, `${APP}/busybox`, 'v2', {
      config: { Cmd: ['/bin/sh'], Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], WorkingDir: '/', User: 'nobody' },
    });
    const vol = (await t.api('POST', `/v1/apps/${APP}/volumes`, { name: 'data', size_gb: 1 })).body;
    const config = {
      image,
      init: { cmd: ['/bin/sh', '-c', 'sleep 100000'] },
      restart: { policy: 'no' },
      mounts: [{ volume: 'data', path: '/data' }],
    };
    const m = await runMachine(t, APP, { config });
    assert.equal((await t.api('GET', `/v1/apps/${APP}/volumes/${vol.id}`)).body.attached_machine_id, m);

    let r = await sh(t, APP, m, 'echo kept > /data/note && echo lost > /note && sync && grep " /data " /proc/mounts');
    assert.equal(r.exit_code, 0, r.stderr);
    assert.match(r.stdout, /^\/dev\/vd\w+ \/data ext4 /m, 'the volume is an ext4 virtio disk at /data');

    // One machine at a time: a second machine cannot take the volume; destroy is refused.
    const second = await t.api('POST', `/v1/apps/${APP}/machines`, { config });
    assert.equal(second.status, 409, JSON.stringify(second.body));
    assert.match(second.body.error, new RegExp(`attached to machine ${m}`));
    const del = await t.api('DELETE', `/v1/apps/${APP}/volumes/${vol.id}`);
    assert.equal(del.status, 409);

    // Extend while running grows the filesystem online (test/volumes/online.test.ts
    // has the details); the size holds across the restart below.
    const ext = await t.api('PUT', `/v1/apps/${APP}/volumes/${vol.id}/extend`, { size_gb: 2 });
    assert.equal(ext.status, 200, JSON.stringify(ext.body));
    assert.equal(ext.body.needs_restart, false);

    // Restart: the volume keeps its data, the root filesystem is fresh.
    assert.equal((await t.api('POST', `/v1/apps/${APP}/machines/${m}/restart`)).status, 200);
    await waitState(t, APP, m, 'started');
    r = await sh(t, APP, m, 'cat /data/note; cat /note 2>/dev/null || echo "root file gone"; df -k /data | tail -1');
    assert.match(r.stdout, /^kept\nroot file gone\n/);
    const kb = Number(r.stdout.trim().split('\n').at(-1)!.trim().split(/\s+/)[1]);
    assert.ok(kb > 1.9 * 1024 * 1024, `the filesystem grew to ~2 GiB (${kb} KiB)`);

    // Update to a new image (as user nobody).
    const up = await t.api('POST', `/v1/apps/${APP}/machines/${m}`, { config: { ...config, image: image2 } });
    assert.equal(up.status, 200, JSON.stringify(up.body));
    await waitState(t, APP, m, 'started');
    r = await sh(t, APP, m, 'cat /data/note; stat -c %U /data; echo second >> /data/note; sync');
    assert.equal(r.stdout, 'kept\nnobody\n');

    // Daemon restart while the machine runs: the new daemon adopts it and the data is there.
    await t.daemon.close();
    t = await startTestDaemon({ dataDir });
    assert.equal((await t.api('GET', `/v1/apps/${APP}/volumes/${vol.id}`)).body.attached_machine_id, m);
    r = await sh(t, APP, m, 'cat /data/note');
    assert.equal(r.stdout, 'kept\nsecond\n');

    // Stop and start under the new daemon: a stopped machine keeps its volume.
    await t.api('POST', `/v1/apps/${APP}/machines/${m}/stop`, {});
    await waitState(t, APP, m, 'stopped');
    assert.equal((await t.api('GET', `/v1/apps/${APP}/volumes/${vol.id}`)).body.attached_machine_id, m);
    assert.equal((await t.api('POST', `/v1/apps/${APP}/machines/${m}/start`)).status, 200);
    await waitState(t, APP, m, 'started');
    r = await sh(t, APP, m, 'cat /data/note; ls /note 2>&1 >/dev/null | grep -c "No such"');
    assert.equal(r.stdout, 'kept\nsecond\n1\n');

    // Destroying the machine frees the volume; a clean shutdown leaves a clean filesystem.
    assert.equal((await t.api('DELETE', `/v1/apps/${APP}/machines/${m}?force=true`)).status, 200);
    await waitState(t, APP, m, 'destroyed');
    const fsck = await fsckClean(t.daemon.volumes.imagePath(vol.id));
    assert.equal(fsck.clean, true, fsck.output);
    assert.equal((await t.api('GET', `/v1/apps/${APP}/volumes/${vol.id}`)).body.attached_machine_id, null);
    assert.equal((await t.api('DELETE', `/v1/apps/${APP}/volumes/${vol.id}`)).status, 200);
  } finally {
    for (const mm of t.daemon.machines.list(APP)) await t.daemon.machines.destroy(APP, mm.id, true).catch(() => {});
    await t.close();
  }
});
