import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { logsOf, pushBusybox, runMachine, sh, waitForLog, waitState } from '../helpers/machines.js';

// Real qemu microVMs under TCG. Each test boots as few VMs as it can.
let t: TestDaemon;
let image: string;
const APP = 'life';

before(async () => {
  t = await startTestDaemon();
  await t.api('POST', '/v1/apps', { app_name: APP });
  image = await pushBusybox(t, APP, 'v1');
});
after(async () => {
  for (const m of (await t.api('GET', `/v1/apps/${APP}/machines`)).body ?? []) {
    await t.api('DELETE', `/v1/apps/${APP}/machines/${m.id}?force=true`);
  }
  await t.close();
});

test('output reaches the logs as separate streams, secrets masked; the exit code comes back as an event', async () => {
  const secret = 'tok-' + Math.random().toString(36).slice(2);
  assert.equal((await t.api('POST', `/v1/apps/${APP}/secrets`, { values: { API_TOKEN: secret } })).status, 200);
  const r = await t.api('POST', `/v1/apps/${APP}/machines`, {
    config: {
      image,
      init: { cmd: ['/bin/sh', '-c', 'echo "out from $(hostname)"; echo "err line" >&2; echo "token=$API_TOKEN."; exit 3'] },
      restart: { policy: 'no' },
    },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const id = r.body.id;
  assert.equal(r.body.config.image, image);
  await waitState(t, APP, id, 'stopped');

  const lines = await logsOf(t, APP, id);
  assert.ok(lines.some((l) => l.stream === 'stdout' && l.message === `out from ${id}`), JSON.stringify(lines));
  assert.ok(lines.some((l) => l.stream === 'stderr' && l.message === 'err line'));
  assert.ok(lines.every((l) => !Number.isNaN(Date.parse(l.timestamp))));
  // An app that prints a secret: masked in the guest, so neither the log API
  // nor the VM's log file on the host ever holds it.
  assert.ok(lines.some((l) => l.message === 'token=[REDACTED].'), JSON.stringify(lines));
  assert.ok(!readFileSync(join(t.dataDir, 'machines', id, 'logs.rec')).toString('latin1').includes(secret));

  const events = (await t.api('GET', `/v1/apps/${APP}/machines/${id}/events`)).body;
  const exit = events.find((e: { type: string }) => e.type === 'exit');
  assert.equal(exit.request.exit_event.exit_code, 3);
  assert.equal(exit.request.exit_event.requested_stop, false);
  assert.deepEqual(
    events.map((e: { type: string }) => e.type).reverse(),
    ['launch', 'start', 'exit'],
  );
  const m = (await t.api('GET', `/v1/apps/${APP}/machines/${id}`)).body;
  assert.equal(m.state, 'stopped');
  assert.equal(m.image_ref.digest.slice(0, 7), 'sha256:');
});

test('exec, signals, stop with SIGTERM, ephemeral root across stop/start, kill after the stop timeout', async () => {
  // The app traps TERM (prints and exits 0) and USR1 (prints and keeps going).
  const script = 'trap "echo got USR1" USR1; trap "echo got TERM; exit 0" TERM; echo ready; while true; do sleep 0.2; done';
  const id = await runMachine(t, APP, { config: { image, init: { cmd: ['/bin/sh', '-c', script] } } });
  await waitForLog(t, APP, (l) => l.machine_id === id && l.message === 'ready');

  const ex = await sh(t, APP, id, 'echo hi; echo there >&2; echo data > /written-at-runtime; exit 7');
  assert.deepEqual(ex, { exit_code: 7, stdout: 'hi\n', stderr: 'there\n' });

  assert.equal((await t.api('POST', `/v1/apps/${APP}/machines/${id}/signal`, { signal: 'SIGUSR1' })).status, 200);
  await waitForLog(t, APP, (l) => l.machine_id === id && l.message === 'got USR1');
  assert.equal((await t.api('POST', `/v1/apps/${APP}/machines/${id}/signal`, { signal: 'SIGNOPE' })).status, 400);

  // An update to an image that cannot be had fails before the machine is
  // touched: it keeps running its old config (the same boot: no new 'ready').
  const before = (await t.api('GET', `/v1/apps/${APP}/machines/${id}`)).body;
  const badUpdate = await t.api('POST', `/v1/apps/${APP}/machines/${id}`, { config: { ...before.config, image: `${APP}:does-not-exist` } });
  assert.ok(badUpdate.status >= 400 && badUpdate.status < 500, JSON.stringify(badUpdate.body));
  assert.match(badUpdate.body.error, new RegExp(`cannot get image ${APP}:does-not-exist`));
  const after = (await t.api('GET', `/v1/apps/${APP}/machines/${id}`)).body;
  assert.equal(after.state, 'started');
  assert.equal(after.config.image, before.config.image);
  assert.equal((await sh(t, APP, id, 'echo alive')).stdout, 'alive\n');
  assert.equal((await logsOf(t, APP)).filter((l) => l.machine_id === id && l.message === 'ready').length, 1);

  const stop = await t.api('POST', `/v1/apps/${APP}/machines/${id}/stop`, { signal: 'SIGTERM', timeout: '20s' });
  assert.equal(stop.status, 200, JSON.stringify(stop.body));
  await waitForLog(t, APP, (l) => l.machine_id === id && l.message === 'got TERM');
  const events = (await t.api('GET', `/v1/apps/${APP}/machines/${id}/events`)).body;
  const exit = events.find((e: { type: string }) => e.type === 'exit');
  assert.equal(exit.request.exit_event.exit_code, 0);
  assert.equal(exit.request.exit_event.requested_stop, true);

  // exec on a stopped machine is a clear 412.
  const dead = await t.api('POST', `/v1/apps/${APP}/machines/${id}/exec`, { command: ['true'] });
  assert.equal(dead.status, 412);
  assert.match(dead.body.error, /stopped/);

  // Start again: the file written to / is gone (fresh writable layer each boot).
  assert.equal((await t.api('POST', `/v1/apps/${APP}/machines/${id}/start`)).status, 200);
  await waitState(t, APP, id, 'started');
  const gone = await sh(t, APP, id, 'test -e /written-at-runtime && echo still-there || echo gone');
  assert.equal(gone.stdout, 'gone\n');

  // An app that ignores the stop signal is killed once the timeout passes.
  const t0 = Date.now();
  const stop2 = await t.api('POST', `/v1/apps/${APP}/machines/${id}/stop`, { signal: 'SIGHUP', timeout: '1s' });
  assert.equal(stop2.status, 200);
  assert.equal((await t.api('GET', `/v1/apps/${APP}/machines/${id}`)).body.state, 'stopped');
  assert.ok(Date.now() - t0 < 30_000);
});

test('restart policy on-failure retries up to max_retries, then the machine stays stopped', async () => {
  const r = await t.api('POST', `/v1/apps/${APP}/machines`, {
    config: { image, init: { cmd: ['/bin/sh', '-c', 'echo attempt; exit 1'] }, restart: { policy: 'on-failure', max_retries: 1 } },
  });
  const id = r.body.id;
  // Two exits: the first run and one retry.
  const deadline = Date.now() + 120_000;
  for (;;) {
    const events = (await t.api('GET', `/v1/apps/${APP}/machines/${id}/events`)).body;
    const exits = events.filter((e: { type: string }) => e.type === 'exit');
    const state = (await t.api('GET', `/v1/apps/${APP}/machines/${id}`)).body.state;
    if (exits.length === 2 && state === 'stopped') {
      assert.ok(events.some((e: { type: string; source: string }) => e.type === 'restart' && e.source === 'flyd'));
      break;
    }
    assert.ok(exits.length <= 2, 'restarted more often than max_retries allows');
    assert.ok(Date.now() < deadline, `timed out: ${exits.length} exits, state ${state}`);
    await new Promise((res) => setTimeout(res, 300));
  }
  const attempts = (await logsOf(t, APP, id)).filter((l) => l.message === 'attempt');
  assert.equal(attempts.length, 2);
});

test('auto_destroy removes the machine when it exits; a non-root USER and WorkingDir hold', async () => {
  const userImage = await pushBusybox(t, APP, 'nobody', {
    config: { User: 'nobody', WorkingDir: '/tmp', Cmd: ['/bin/sh', '-c', 'echo "uid=$(id -u) gid=$(id -g) pwd=$(pwd) home=$HOME"'], Env: ['PATH=/bin:/usr/bin'] },
  });
  const r = await t.api('POST', `/v1/apps/${APP}/machines`, { config: { image: userImage, auto_destroy: true } });
  assert.equal(r.status, 200);
  await waitState(t, APP, r.body.id, 'destroyed');
  const line = await waitForLog(t, APP, (l) => l.machine_id === r.body.id && l.message.startsWith('uid='));
  assert.equal(line.message, 'uid=65534 gid=65534 pwd=/tmp home=/nonexistent');
  const list = (await t.api('GET', `/v1/apps/${APP}/machines`)).body.map((m: { id: string }) => m.id);
  assert.ok(!list.includes(r.body.id));
});

test('bad input: invalid configs, unknown machines, wrong states and images of other orgs are clear errors', async () => {
  const noImage = await t.api('POST', `/v1/apps/${APP}/machines`, { config: {} });
  assert.equal(noImage.status, 400);
  assert.match(noImage.body.error, /config\.image/);
  const badEnv = await t.api('POST', `/v1/apps/${APP}/machines`, { config: { image, env: { '1BAD': 'x' } } });
  assert.equal(badEnv.status, 400);
  assert.match(badEnv.body.error, /environment variable name/);
  const badPolicy = await t.api('POST', `/v1/apps/${APP}/machines`, { config: { image, restart: { policy: 'sometimes' } } });
  assert.equal(badPolicy.status, 400);
  assert.match(badPolicy.body.error, /restart\.policy/);
  assert.equal((await t.api('GET', `/v1/apps/${APP}/machines/ffffffffffffff`)).status, 404);
  const waitBad = await t.api('GET', `/v1/apps/${APP}/machines/ffffffffffffff/wait?state=started`);
  assert.equal(waitBad.status, 404);

  // A created (never started) machine: wait times out with 408; destroy works.
  const created = await t.api('POST', `/v1/apps/${APP}/machines`, { config: { image }, skip_launch: true });
  assert.equal(created.body.state, 'created');
  const timeout = await t.api('GET', `/v1/apps/${APP}/machines/${created.body.id}/wait?state=started&timeout=1`);
  assert.equal(timeout.status, 408);
  assert.equal((await t.api('DELETE', `/v1/apps/${APP}/machines/${created.body.id}`)).status, 200);

  // Another org cannot see this app's machines, nor run this app's image.
  await t.api('POST', '/v1/orgs', { slug: 'other' });
  const other = (await t.api('POST', '/v1/tokens', { org_slug: 'other' })).body.token;
  assert.equal((await t.api('GET', `/v1/apps/${APP}/machines`, undefined, other)).status, 404);
  await t.api('POST', '/v1/apps', { app_name: 'thief' }, other);
  const stolen = await t.api('POST', '/v1/apps/thief/machines', { config: { image } }, other);
  assert.equal(stolen.status, 403);
  assert.match(stolen.body.error, /another organization/);
  const missing = await t.api('POST', `/v1/apps/${APP}/machines`, { config: { image: `${APP}:does-not-exist` } });
  assert.ok(missing.status >= 400 && missing.status < 500, JSON.stringify(missing.body));
});
