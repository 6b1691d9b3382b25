import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { pushBusybox, waitState } from '../helpers/machines.js';
import { createProxy, machineBackends, type Proxy } from '../../src/proxy/index.js';
import { createLogger } from '../../src/shared/log.js';
import { call, sleep } from './helpers.js';

// Real qemu microVMs (TCG) behind the real MachineManager; busybox httpd is
// the app. Four boots in all.
let t: TestDaemon;
let image: string;
const APP = 'pxvm';
const proxyPort = () => Number(new URL(t.daemon.proxyUrl).port);
const HOST = `${APP}.localhost`;
const httpd = ['/bin/sh', '-c', 'mkdir -p /www && echo "hello from $FLY_MACHINE_ID" > /www/index.html && exec httpd -f -p 8080 -h /www'];
const service = (extra: Record<string, unknown> = {}) => ({
  protocol: 'tcp',
  internal_port: 8080,
  ports: [{ port: 80, handlers: ['http'] }],
  autostart: true,
  autostop: 'stop',
  min_machines_running: 0,
  ...extra,
});
const haveGuest = existsSync(new URL('../../../.cache/guest/vmlinux', import.meta.url));

/** A second proxy over the daemon's own MachineManager, with a short idle period. */
function shortIdleProxy(idleMs: number): Proxy {
  return createProxy({
    backends: machineBackends({
      machines: t.daemon.machines,
      appExists: (n) => t.daemon.accounts.findApp(n) !== undefined,
      apps: () => [APP],
    }),
    log: createLogger(() => {}),
    autostopIdleMs: idleMs,
  });
}

before(async () => {
  t = await startTestDaemon();
  assert.equal((await t.api('POST', '/v1/apps', { app_name: APP })).status, 201);
  image = await pushBusybox(t, APP, 'v1');
});
after(async () => {
  for (const m of (await t.api('GET', `/v1/apps/${APP}/machines`)).body ?? []) {
    await t.api('DELETE', `/v1/apps/${APP}/machines/${m.id}?force=true`);
  }
  await t.close();
});

test('daemon proxy: unknown app → 404; no machines → 503', async () => {
  const r = await call(proxyPort(), 'nope.localhost');
  assert.equal(r.status, 404);
  assert.match(r.body, /no app named "nope"/);
  const e = await call(proxyPort(), HOST);
  assert.equal(e.status, 503);
  assert.match(e.body, /has no machines/);
});

test('autostart holds the request until httpd in the VM answers; autostop stops it when idle; the next request starts it again', { skip: !haveGuest && 'guest kernel not built (scripts/setup.sh)', timeout: 300_000 }, async () => {
  const created = await t.api('POST', `/v1/apps/${APP}/machines`, { config: { image, init: { cmd: httpd }, services: [service()] }, skip_launch: true });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const id = created.body.id as string;
  assert.equal(created.body.state, 'created');

  const t0 = Date.now();
  const first = await call(proxyPort(), HOST, { path: '/index.html' });
  const coldMs = Date.now() - t0;
  assert.equal(first.status, 200, first.body);
  assert.equal(first.body, `hello from ${id}\n`);
  assert.ok(first.headers['fly-request-id']);
  t.daemon.machines.get(APP, id).state === 'started' || assert.fail('machine is not started');
  process.stderr.write(`# proxy vm: cold start through the proxy ${coldMs} ms\n`);

  // Autostop: a proxy with a 1.5 s idle period stops the machine.
  const p = shortIdleProxy(1_500);
  await p.listen('127.0.0.1', 0);
  try {
    p.pool.sweep(); // first sight starts the idle clock
    await waitState(t, APP, id, 'stopped', 60);
    assert.equal(p.pool.stops, 1);
  } finally {
    await p.close();
  }
  const events = (await t.api('GET', `/v1/apps/${APP}/machines/${id}/events`)).body as { type: string }[];
  assert.ok(events.some((e) => e.type === 'stop'));

  const again = await call(proxyPort(), HOST, { path: '/index.html' });
  assert.equal(again.status, 200, again.body);
  assert.equal(again.body, `hello from ${id}\n`);

  // Stopped through the API (not the proxy): the proxy's cached machine
  // list must not route to it. A list cached for a minute makes a stale
  // route certain if a state change did not drop it (it answered 502).
  const cached = createProxy({
    backends: machineBackends({ machines: t.daemon.machines, appExists: (n) => t.daemon.accounts.findApp(n) !== undefined, apps: () => [APP], cacheMs: 60_000 }),
    log: createLogger(() => {}),
  });
  const cachedPort = await cached.listen('127.0.0.1', 0);
  try {
    assert.equal((await call(cachedPort, HOST, { path: '/index.html' })).status, 200);
    assert.equal((await t.api('POST', `/v1/apps/${APP}/machines/${id}/stop`, {})).status, 200);
    await waitState(t, APP, id, 'stopped', 60);
    const afterStop = await call(cachedPort, HOST, { path: '/index.html' });
    assert.equal(afterStop.status, 200, `a request right after an API stop starts the machine again: ${afterStop.body}`);
    assert.equal(afterStop.body, `hello from ${id}\n`);
    assert.equal(cached.pool.starts, 1);
  } finally {
    await cached.close();
  }
  await t.api('DELETE', `/v1/apps/${APP}/machines/${id}?force=true`);
});

test('autostop never goes below min_machines_running', { skip: !haveGuest && 'guest kernel not built (scripts/setup.sh)', timeout: 300_000 }, async () => {
  const created = await t.api('POST', `/v1/apps/${APP}/machines`, { config: { image, init: { cmd: httpd }, services: [service({ min_machines_running: 1 })] } });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const id = created.body.id as string;
  await waitState(t, APP, id, 'started', 120);
  const p = shortIdleProxy(500);
  const port = await p.listen('127.0.0.1', 0);
  try {
    const r = await call(port, HOST, { path: '/index.html' });
    assert.equal(r.status, 200, r.body);
    await sleep(2_500);
    assert.equal(p.pool.stops, 0);
    assert.equal(t.daemon.machines.get(APP, id).state, 'started');
  } finally {
    await p.close();
  }
  await t.api('DELETE', `/v1/apps/${APP}/machines/${id}?force=true`);
});

test('a machine that fails to start → 503 naming the machine id', { timeout: 120_000 }, async () => {
  const created = await t.api('POST', `/v1/apps/${APP}/machines`, {
    config: { image: `${APP}:does-not-exist`, init: { cmd: httpd }, services: [service()] },
    skip_launch: true,
  });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const id = created.body.id as string;
  const r = await call(proxyPort(), HOST);
  assert.equal(r.status, 503);
  assert.match(r.body, new RegExp(`machine ${id} of app "${APP}" failed to start`));
  await t.api('DELETE', `/v1/apps/${APP}/machines/${id}?force=true`);
});
