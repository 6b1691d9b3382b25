import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TestBackends, TestMachine, withProxy, call, echo, sleep, until, web } from './helpers.js';

/*
 * The proxy with worker threads (ProxyOptions.workers = 2): the request
 * path runs in two threads that share the per-machine counters with the
 * main thread. The same behaviours as proxy.test.ts where threads could
 * make them drift: least outstanding, hard_limit, autostart once, autostop.
 */

const WORKERS = { workers: 2 };

function holder(id: string) {
  const held: ServerResponse[] = [];
  return {
    held,
    handler: (req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      held.push(res);
    },
    releaseAll() {
      for (const r of held.splice(0)) r.end(id);
    },
  };
}

test('workers: both threads serve, each with its own request ids, and close() stops listening', async () => {
  const b = new TestBackends().add('alpha', await new TestMachine('m1', [web(80)]).up());
  let port = 0;
  await withProxy(b, WORKERS, async (p, proxy) => {
    port = p;
    assert.equal(proxy.server.listening, false, 'the main thread handed the socket to the workers');
    const prefixes = new Set<string>();
    for (let round = 0; round < 20 && prefixes.size < 2; round++) {
      const rs = await Promise.all(Array.from({ length: 16 }, () => call(p, 'alpha.localhost')));
      for (const r of rs) {
        assert.equal(r.status, 200);
        assert.equal(r.json().machine, 'm1');
        const id = String(r.headers['fly-request-id']);
        assert.equal(r.json().headers['fly-request-id'], id);
        prefixes.add(id.slice(0, 8));
      }
    }
    assert.equal(prefixes.size, 2, 'connections were accepted by both worker threads');
    const r = await call(p, 'nope.localhost');
    assert.equal(r.status, 404);
    assert.match(r.body, /there is no app named "nope"/);
  });
  const err = await new Promise<string>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  assert.equal(err, 'ECONNREFUSED', 'no thread listens after close()');
});

test('workers: least outstanding counts every thread\'s requests', async () => {
  const h1 = holder('m1');
  const h2 = holder('m2');
  const b = new TestBackends().add('alpha', await new TestMachine('m1', [web(80)], h1.handler).up(), await new TestMachine('m2', [web(80)], h2.handler).up());
  await withProxy(b, WORKERS, async (port, proxy) => {
    const pending = [];
    for (let i = 0; i < 10; i++) {
      pending.push(call(port, 'alpha.localhost'));
      await until(() => h1.held.length + h2.held.length === i + 1, 5000, `request ${i} to arrive`);
    }
    assert.equal(h1.held.length, 5);
    assert.equal(h2.held.length, 5);
    assert.equal(proxy.pool.inflight('m1'), 5);
    h1.releaseAll();
    await until(() => proxy.pool.inflight('m1') === 0, 5000, 'm1 to drain');
    for (let i = 0; i < 3; i++) {
      pending.push(call(port, 'alpha.localhost'));
      await until(() => h1.held.length === i + 1, 5000, 'request on m1');
    }
    assert.equal(h2.held.length, 5);
    h1.releaseAll();
    h2.releaseAll();
    const all = await Promise.all(pending);
    assert.deepEqual(all.map((r) => r.status), Array(13).fill(200));
    await until(() => proxy.pool.inflight('m1') + proxy.pool.inflight('m2') === 0, 5000, 'every slot given back');
  });
});

test('workers: hard_limit is exact under concurrent clients on both threads; the queue gets freed slots', async () => {
  let now = 0;
  let max = 0;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    now++;
    max = Math.max(max, now);
    setTimeout(() => {
      now--;
      res.end('ok');
    }, 30);
  };
  const svc = { ...web(80), concurrency: { type: 'requests' as const, soft_limit: 3, hard_limit: 3 } };
  const b = new TestBackends().add('alpha', await new TestMachine('m1', [svc], handler).up());
  await withProxy(b, { ...WORKERS, queueTimeoutMs: 10_000 }, async (port, proxy) => {
    const all = await Promise.all(Array.from({ length: 60 }, () => call(port, 'alpha.localhost')));
    assert.deepEqual(all.map((r) => r.status), Array(60).fill(200));
    assert.equal(max, 3, 'never more than hard_limit at the machine, and the limit was reached');
    assert.equal(proxy.pool.inflight('m1'), 0);
  });
});

test('workers: hard_limit queues briefly, then 503 explains; soft_limit brings up another machine', async () => {
  const h = holder('m1');
  const svc = { ...web(80), autostart: true, concurrency: { type: 'requests' as const, soft_limit: 1, hard_limit: 2 } };
  const m1 = await new TestMachine('m1', [svc], h.handler).up();
  const m2 = new TestMachine('m2', [svc], echo('m2'));
  const b = new TestBackends().add('alpha', m1, m2);
  b.startImpl = () => new Promise(() => {});
  await withProxy(b, { ...WORKERS, queueTimeoutMs: 300, startTimeoutMs: 5000 }, async (port, proxy) => {
    const r1 = call(port, 'alpha.localhost');
    await until(() => h.held.length === 1, 5000, 'first request');
    const r2 = call(port, 'alpha.localhost');
    await until(() => h.held.length === 2, 5000, 'second request (above soft, below hard)');
    assert.deepEqual(b.startCalls, ['m2'], 'above soft_limit on every machine: one more is started');
    const r3 = call(port, 'alpha.localhost');
    await sleep(100);
    assert.equal(h.held.length, 2);
    h.held.shift()!.end('done');
    await until(() => h.held.length === 2, 5000, 'queued request to get the freed slot');
    const t0 = Date.now();
    const r4 = await call(port, 'alpha.localhost');
    assert.equal(r4.status, 503);
    assert.match(r4.body, /hard_limit of 2 concurrent requests/);
    assert.ok(Date.now() - t0 >= 250, 'it waited in the queue first');
    h.releaseAll();
    assert.deepEqual([(await r1).status, (await r2).status, (await r3).status], [200, 200, 200]);
    assert.equal(proxy.pool.starts, 1);
  });
});

test('workers: a flood of requests to a stopped app starts it once and every request is answered', async () => {
  const m = new TestMachine('m1', [{ ...web(80), autostart: true }]);
  const b = new TestBackends().add('alpha', m);
  b.startDelayMs = 300;
  await withProxy(b, WORKERS, async (port, proxy) => {
    const all = await Promise.all(Array.from({ length: 50 }, () => call(port, 'alpha.localhost')));
    assert.deepEqual(all.map((r) => r.status), Array(50).fill(200));
    assert.deepEqual(b.startCalls, ['m1']);
    assert.equal(proxy.pool.starts, 1);
  });
});

test('workers: autostop never stops a machine serving a request; a refused machine is retried elsewhere', async () => {
  const svc = { ...web(80), autostart: true, autostop: 'stop' as const, min_machines_running: 0 };
  const h = holder('m1');
  const m1 = await new TestMachine('m1', [svc], h.handler).up();
  const m2 = await new TestMachine('m2', [svc]).up();
  const b = new TestBackends().add('alpha', m1, m2);
  await withProxy(b, { ...WORKERS, autostopIdleMs: 1000 }, async (port) => {
    const held = call(port, 'alpha.localhost');
    held.catch(() => {}); // awaited below; a failed assertion first must not hide behind its rejection
    await until(() => h.held.length === 1, 5000, 'a long request on m1');
    await until(() => b.stopCalls.includes('m2'), 5000, 'the idle machine to stop');
    await sleep(1500);
    assert.deepEqual(b.stopCalls, ['m2'], 'm1 serves a request: not stopped');
    h.releaseAll();
    m1.handler = echo('m1');
    assert.equal((await held).status, 200);
    await until(() => m1.state === 'stopped', 5000, 'm1 to stop once idle');
    // Both stopped: the next request starts one again.
    const r = await call(port, 'alpha.localhost');
    assert.equal(r.status, 200);
    assert.equal(b.startCalls.length, 1);
  });
  // A machine that crashed (port closed, record still "started"): refused, retried on the other.
  const m3 = await new TestMachine('m3', [web(80)]).up();
  const m4 = await new TestMachine('m4', [web(80)]).up();
  const b2 = new TestBackends().add('beta', m3, m4);
  await withProxy(b2, WORKERS, async (port) => {
    assert.equal((await call(port, 'beta.localhost')).json().machine, 'm3');
    await m3.kill();
    for (let i = 0; i < 6; i++) {
      const r = await call(port, 'beta.localhost', { method: 'POST', body: 'x' });
      assert.equal(r.status, 200);
      assert.equal(r.json().machine, 'm4');
    }
  });
});
