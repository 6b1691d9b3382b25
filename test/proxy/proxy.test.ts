import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { TestBackends, TestMachine, withProxy, call, echo, sleep, until, web } from './helpers.js';

/** A request handler that holds every request until the test releases it. */
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

test('routes by Host to the app machines; unknown hosts and apps get 404', async () => {
  const b = new TestBackends()
    .add('alpha', await new TestMachine('a1', [web(8080)]).up())
    .add('beta', await new TestMachine('b1', [web(3000)]).up());
  await withProxy(b, {}, async (port) => {
    assert.equal((await call(port, 'alpha.localhost')).json().machine, 'a1');
    assert.equal((await call(port, `beta.localhost:${port}`)).json().machine, 'b1');
    assert.equal((await call(port, 'BETA.LocalHost.')).json().machine, 'b1');
    const r = await call(port, `alpha.localhost:${port}`, { path: '/x/y?z=1' });
    assert.equal(r.json().url, '/x/y?z=1');

    const unknownHost = await call(port, 'example.com');
    assert.equal(unknownHost.status, 404);
    assert.match(unknownHost.body, /no app is served at host "example.com"/);
    assert.match(unknownHost.body, /<app>\.localhost/);
    const unknownApp = await call(port, 'gamma.localhost');
    assert.equal(unknownApp.status, 404);
    assert.match(unknownApp.body, /no app named "gamma"/);
    assert.equal((await call(port, 'localhost')).status, 404);
  });
});

test('custom domain', async () => {
  const b = new TestBackends().add('alpha', await new TestMachine('a1', [web(80)]).up());
  await withProxy(b, { domain: 'apps.internal' }, async (port) => {
    assert.equal((await call(port, 'alpha.apps.internal')).status, 200);
    assert.equal((await call(port, 'alpha.localhost')).status, 404);
  });
});

test('sets X-Forwarded-* and a request id; drops hop-by-hop and spoofed headers', async () => {
  const b = new TestBackends().add('alpha', await new TestMachine('a1', [web(80)]).up());
  await withProxy(b, {}, async (port) => {
    const r = await call(port, `alpha.localhost:${port}`, {
      headers: { 'x-forwarded-for': '203.0.113.7', 'fly-request-id': 'spoofed', 'x-custom': 'kept', connection: 'keep-alive, x-drop', 'x-drop': 'gone' },
    });
    const seen = r.json().headers;
    assert.equal(seen['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], `alpha.localhost:${port}`);
    assert.equal(seen['x-forwarded-port'], String(port));
    assert.equal(seen['fly-client-ip'], '127.0.0.1');
    assert.equal(seen.host, `alpha.localhost:${port}`);
    assert.equal(seen['x-custom'], 'kept');
    assert.equal(seen['x-drop'], undefined);
    assert.match(seen['fly-request-id'], /^[0-9a-f]{16}-local$/);
    assert.equal(r.headers['fly-request-id'], seen['fly-request-id']);
    const r2 = await call(port, 'alpha.localhost');
    assert.notEqual(r2.headers['fly-request-id'], r.headers['fly-request-id']);
  });
});

test('least outstanding requests spreads held requests evenly', async () => {
  const h1 = holder('m1');
  const h2 = holder('m2');
  const b = new TestBackends().add('alpha', await new TestMachine('m1', [web(80)], h1.handler).up(), await new TestMachine('m2', [web(80)], h2.handler).up());
  await withProxy(b, {}, async (port, proxy) => {
    const pending = [];
    for (let i = 0; i < 10; i++) {
      pending.push(call(port, 'alpha.localhost'));
      await until(() => h1.held.length + h2.held.length === i + 1, 5000, `request ${i} to arrive`);
    }
    assert.equal(h1.held.length, 5);
    assert.equal(h2.held.length, 5);
    assert.equal(proxy.pool.inflight('m1'), 5);
    // m1 finishes its work: the next requests go to m1 until it catches up.
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
  });
});

test('a refused connection is retried on another machine before any byte of the body is sent', async () => {
  const m1 = await new TestMachine('m1', [web(80)]).up();
  const m2 = await new TestMachine('m2', [web(80)]).up();
  const b = new TestBackends().add('alpha', m1, m2);
  await withProxy(b, {}, async (port) => {
    // Ties go to the first machine listed (so spare ones can go idle).
    assert.equal((await call(port, 'alpha.localhost')).json().machine, 'm1');
    await until(() => m2.probes > 0, 5000, 'm2 to be probed');
    await sleep(50);
    await m1.kill(); // still "started" in the records, but the port refuses
    const body = 'x'.repeat(100_000);
    for (let i = 0; i < 4; i++) {
      const r = await call(port, 'alpha.localhost', { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
      assert.equal(r.status, 200);
      assert.equal(r.json().machine, 'm2');
      assert.equal(r.json().body.length, body.length);
    }
    // The only machine refusing: 502 naming it, not a hang.
    await m2.kill();
    const r = await call(port, 'alpha.localhost', { method: 'POST', body: 'x' });
    assert.equal(r.status, 502);
    assert.match(r.body, /machine m[12] .*refused the connection/);
  });
});

test('keep-alive race: a pooled connection the machine dropped is retried on a fresh one to the same machine', async () => {
  // The machine drops every pooled connection when it is reused, without a
  // byte of answer (as a server closing idle connections at that moment).
  const seen = new WeakMap<object, number>();
  const m = await new TestMachine('only', [web(80)], (req, res) => {
    const n = (seen.get(req.socket) ?? 0) + 1;
    seen.set(req.socket, n);
    if (n > 1) req.socket.destroy();
    else echo('only')(req, res);
  }).up();
  const b = new TestBackends().add('alpha', m);
  await withProxy(b, {}, async (port) => {
    for (let i = 0; i < 5; i++) {
      const r = await call(port, 'alpha.localhost', { path: `/n${i}` });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json().url, `/n${i}`);
    }
  });
});

test('streams request and response bodies without buffering', async () => {
  let gotFirstChunk!: () => void;
  const firstChunk = new Promise<void>((r) => (gotFirstChunk = r));
  let releaseSecond!: () => void;
  const secondAllowed = new Promise<void>((r) => (releaseSecond = r));
  const m = await new TestMachine('m1', [web(80)], (req, res) => {
    if (req.url === '/upload') {
      let total = 0;
      req.on('data', (c: Buffer) => {
        total += c.length;
        gotFirstChunk();
      });
      req.on('end', () => res.end(String(total)));
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first;');
      void secondAllowed.then(() => res.end('second'));
    }
  }).up();
  const b = new TestBackends().add('alpha', m);
  await withProxy(b, {}, async (port) => {
    // Upload: the machine sees the first chunk while the client still holds the rest.
    const up = request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', headers: { host: 'alpha.localhost', 'transfer-encoding': 'chunked' }, agent: false });
    const upDone = new Promise<string>((resolve, reject) => {
      up.on('response', (res) => {
        let s = '';
        res.on('data', (c) => (s += c));
        res.on('end', () => resolve(s));
      });
      up.on('error', reject);
    });
    up.write(Buffer.alloc(1000, 1));
    await Promise.race([firstChunk, sleep(3000).then(() => assert.fail('first upload chunk did not reach the machine before the request ended'))]);
    up.end(Buffer.alloc(500, 2));
    assert.equal(await upDone, '1500');

    // Download: the client reads the first part before the machine writes the rest.
    const chunks: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/download', headers: { host: 'alpha.localhost' }, agent: false }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          chunks.push(c);
          if (chunks.length === 1) releaseSecond();
        });
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(chunks[0], 'first;');
    assert.equal(chunks.join(''), 'first;second');
  });
});

test('websocket upgrade is tunnelled both ways', async () => {
  const m = new TestMachine('m1', [web(80)]);
  await m.up();
  m.server!.on('upgrade', (req: IncomingMessage, sock: Socket, head: Buffer) => {
    const accept = createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nX-Seen-Forwarded: ${req.headers['x-forwarded-for']}\r\n\r\n`);
    if (head.length) sock.write(head);
    sock.on('data', (d: Buffer) => sock.write(Buffer.concat([Buffer.from('echo:'), d])));
    sock.on('end', () => sock.end());
  });
  const b = new TestBackends().add('alpha', m);
  await withProxy(b, {}, async (port, proxy) => {
    const key = Buffer.from('0123456789abcdef').toString('base64');
    const sock = connect(port, '127.0.0.1');
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (buf += d));
    sock.write(`GET /chat HTTP/1.1\r\nHost: alpha.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await until(() => buf.includes('\r\n\r\n'), 5000, 'the 101 answer');
    assert.match(buf, /^HTTP\/1.1 101 /);
    const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    assert.ok(buf.includes(`Sec-WebSocket-Accept: ${accept}`));
    assert.ok(buf.includes('X-Seen-Forwarded: 127.0.0.1'));
    assert.match(buf, /Fly-Request-Id: /);
    assert.equal(proxy.pool.inflight('m1'), 1);
    buf = '';
    sock.write('hello');
    await until(() => buf === 'echo:hello', 5000, 'the echo');
    sock.write('again');
    await until(() => buf === 'echo:helloecho:again', 5000, 'the second echo');
    sock.destroy();
    await until(() => proxy.pool.inflight('m1') === 0, 5000, 'the tunnel to be released');
  });
});

test('keep-alive: one client connection and one machine connection for sequential requests', async () => {
  const m = await new TestMachine('m1', [web(80)]).up();
  const b = new TestBackends().add('alpha', m);
  await withProxy(b, {}, async (port, proxy) => {
    let clientConns = 0;
    proxy.server.on('connection', () => clientConns++);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 20; i++) assert.equal((await call(port, 'alpha.localhost', { agent })).status, 200);
    agent.destroy();
    assert.equal(clientConns, 1);
    // The readiness probe uses its own connection; the 20 requests reuse
    // pooled ones (a second may open when a request arrives before the
    // previous connection was handed back to the pool).
    assert.ok(m.connections <= 4, `machine saw ${m.connections} connections for 20 requests`);
    assert.equal(m.requests >= 20, true);
  });
});

test('hard_limit queues briefly, then 503 explains; soft_limit brings up another machine', async () => {
  const h = holder('m1');
  const svc = { ...web(80), autostart: true, concurrency: { type: 'requests' as const, soft_limit: 1, hard_limit: 2 } };
  const m1 = await new TestMachine('m1', [svc], h.handler).up();
  const m2 = new TestMachine('m2', [svc], echo('m2'));
  const b = new TestBackends().add('alpha', m1, m2);
  b.startImpl = () => new Promise(() => {}); // m2 never finishes booting in this test
  await withProxy(b, { queueTimeoutMs: 300, startTimeoutMs: 5000 }, async (port, proxy) => {
    const r1 = call(port, 'alpha.localhost');
    await until(() => h.held.length === 1, 5000, 'first request');
    const r2 = call(port, 'alpha.localhost');
    await until(() => h.held.length === 2, 5000, 'second request (above soft, below hard)');
    assert.deepEqual(b.startCalls, ['m2'], 'above soft_limit on every machine: one more is started');
    // Third: at hard limit → queued, and answered once a slot frees.
    const r3 = call(port, 'alpha.localhost');
    await sleep(100);
    assert.equal(h.held.length, 2);
    h.held.shift()!.end('done');
    await until(() => h.held.length === 2, 5000, 'queued request to get the freed slot');
    // Fourth: nothing frees up → 503 with a reason after the queue timeout.
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

test('a machine crashing mid-request gives 502 or a cut connection, never a hang', async () => {
  const m = await new TestMachine('m1', [web(80)], (req, res) => {
    if (req.url === '/before') req.socket.destroy();
    else {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('partial');
      setTimeout(() => req.socket.destroy(), 50);
    }
  }).up();
  const b = new TestBackends().add('alpha', m);
  await withProxy(b, {}, async (port) => {
    const t0 = Date.now();
    const r = await call(port, 'alpha.localhost', { method: 'POST', path: '/before', body: 'data' });
    assert.equal(r.status, 502);
    assert.match(r.body, /machine m1 .*failed before answering/);
    // Bodyless GETs are retried once per machine, then 502 too.
    const g = await call(port, 'alpha.localhost', { path: '/before' });
    assert.equal(g.status, 502);
    await assert.rejects(call(port, 'alpha.localhost', { path: '/during' }), /aborted|socket hang up|ECONNRESET/);
    assert.ok(Date.now() - t0 < 5000);
  });
});

test('stalled clients: header timeout → 408, idle body → connection closed and machine request aborted', async () => {
  let aborted = false;
  const m = await new TestMachine('m1', [web(80)], (req, res) => {
    req.on('aborted', () => (aborted = true));
    req.on('close', () => { if (!req.complete) aborted = true; });
    req.resume();
    req.on('end', () => res.end('ok'));
  }).up();
  const b = new TestBackends().add('alpha', m);
  await withProxy(b, { headersTimeoutMs: 300, idleTimeoutMs: 1200 }, async (port) => {
    const s1 = connect(port, '127.0.0.1');
    let out1 = '';
    s1.on('data', (d) => (out1 += d));
    s1.write('GET / HTTP/1.1\r\nHost: alpha.localhost\r\n');
    const closed1 = new Promise((r) => s1.on('close', r));
    await Promise.race([closed1, sleep(4000).then(() => assert.fail('header-stalled client was not cut off'))]);
    assert.match(out1, /^HTTP\/1.1 408 /);
    assert.match(out1, /did not arrive within/);

    const s2 = connect(port, '127.0.0.1');
    s2.on('data', () => {});
    s2.write('POST / HTTP/1.1\r\nHost: alpha.localhost\r\nContent-Length: 100\r\n\r\n0123456789');
    const closed2 = new Promise((r) => s2.on('close', r));
    await Promise.race([closed2, sleep(4000).then(() => assert.fail('body-stalled client was not cut off'))]);
    await until(() => aborted, 3000, 'the machine to see the request aborted');
  });
});

test('oversized headers are rejected with 431', async () => {
  const m = await new TestMachine('m1', [web(80)]).up();
  const b = new TestBackends().add('alpha', m);
  await withProxy(b, { maxHeaderSize: 4096 }, async (port) => {
    const r = await call(port, 'alpha.localhost', { headers: { cookie: 'c'.repeat(8000) } });
    assert.equal(r.status, 431);
    assert.match(r.body, /larger than the 4096 bytes/);
    assert.equal(m.requests, 0);
  });
});

test('a flood of requests to a stopped app starts it once and every request is answered', async () => {
  const m = new TestMachine('m1', [{ ...web(80), autostart: true }]);
  const b = new TestBackends().add('alpha', m);
  b.startDelayMs = 300;
  await withProxy(b, {}, async (port, proxy) => {
    const t0 = Date.now();
    const all = await Promise.all(Array.from({ length: 50 }, () => call(port, 'alpha.localhost')));
    assert.deepEqual(all.map((r) => r.status), Array(50).fill(200));
    assert.ok(Date.now() - t0 >= 300);
    assert.deepEqual(b.startCalls, ['m1']);
    assert.equal(proxy.pool.starts, 1);
  });
});

test('autostart waits until the service answers, not just until the machine is started', async () => {
  const m = new TestMachine('m1', [{ ...web(80), autostart: true }]);
  const b = new TestBackends().add('alpha', m);
  // Like qemu's port forward: the port accepts at once but closes connections
  // until the app inside listens.
  b.startImpl = async (mm) => {
    const tcp = createTcpServer((s) => s.destroy());
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const port = (tcp.address() as { port: number }).port;
    mm.port = port;
    mm.state = 'started';
    setTimeout(() => {
      tcp.close();
      const srv = createServer((req, res) => echo('m1')(req, res));
      srv.listen(port, '127.0.0.1');
      mm.server = srv;
    }, 400);
  };
  await withProxy(b, {}, async (port) => {
    const t0 = Date.now();
    const r = await call(port, 'alpha.localhost', { method: 'POST', body: 'payload' });
    assert.equal(r.status, 200);
    assert.equal(r.json().body, 'payload');
    assert.ok(Date.now() - t0 >= 400);
  });
});

/**
 * A started machine m1 behind a port that accepts every connection but
 * leaves those for which `hold()` is true unanswered (like a guest not
 * answering yet behind qemu's forward); the others reach an HTTP server.
 */
async function machineHoldingConnections(hold: () => boolean) {
  const http = createServer((req, res) => echo('m1')(req, res));
  const held: Socket[] = [];
  const tcp = createTcpServer((s) => {
    if (hold()) held.push(s);
    else http.emit('connection', s);
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  const m = new TestMachine('m1', [web(80)]);
  m.port = (tcp.address() as { port: number }).port;
  m.state = 'started';
  return {
    backends: new TestBackends().add('alpha', m),
    held,
    close() {
      for (const s of held) s.destroy();
      tcp.close();
    },
  };
}

test('a probe attempt that hangs past the first success does not take the machine out of service', async () => {
  // Like a slow guest: the first probe connections get no answer (they time
  // out later), a later one is answered.
  let conns = 0;
  const mh = await machineHoldingConnections(() => ++conns <= 3);
  try {
    await withProxy(mh.backends, { probeTimeoutMs: 300 }, async (port) => {
      assert.equal((await call(port, 'alpha.localhost')).status, 200);
      await sleep(600); // the held attempts have timed out by now
      const r = await call(port, 'alpha.localhost');
      assert.equal(r.status, 200, r.body);
    });
  } finally {
    mh.close();
  }
});

test('autostart: probe attempts left hanging while the guest boots do not delay noticing the app is up', async () => {
  // Like qemu's user-mode forward before the guest's network is up: every
  // connection is accepted and then nothing happens (its SYN to the guest
  // was lost) until the attempt times out. From 600 ms on, the app answers.
  const t0 = Date.now();
  const mh = await machineHoldingConnections(() => Date.now() - t0 < 600);
  try {
    // Attempts time out after 5 s: with too few attempt slots, all of them
    // would be held by the hanging ones and the answer would wait for that.
    await withProxy(mh.backends, { probeTimeoutMs: 5_000, probeIntervalMs: 50 }, async (port) => {
      const r = await call(port, 'alpha.localhost');
      assert.equal(r.status, 200, r.body);
      const ms = Date.now() - t0;
      assert.ok(ms < 3_000, `answered ${ms} ms after the start: the hanging attempts held it up`);
      assert.ok(mh.held.length > 8, `${mh.held.length} attempts hung while the app was down`);
    });
  } finally {
    mh.close();
  }
});

test('a failed autostart answers 503 naming the machine', async () => {
  const m = new TestMachine('m1bad', [{ ...web(80), autostart: true }]);
  const b = new TestBackends().add('alpha', m);
  b.startImpl = async () => {
    throw new Error('image alpha:latest not found');
  };
  await withProxy(b, {}, async (port) => {
    const r = await call(port, 'alpha.localhost');
    assert.equal(r.status, 503);
    assert.match(r.body, /machine m1bad of app "alpha" failed to start: image alpha:latest not found/);
    // Within the retry back-off, no new boot per request.
    const r2 = await call(port, 'alpha.localhost');
    assert.equal(r2.status, 503);
    assert.match(r2.body, /m1bad/);
    assert.deepEqual(b.startCalls, ['m1bad']);
  });
});

test('no started machine and autostart off: 503 that says so', async () => {
  const b = new TestBackends().add('alpha', new TestMachine('m1', [web(80)])).add('empty');
  await withProxy(b, {}, async (port) => {
    const r = await call(port, 'alpha.localhost');
    assert.equal(r.status, 503);
    assert.match(r.body, /no started machine and autostart is off/);
    const e = await call(port, 'empty.localhost');
    assert.equal(e.status, 503);
    assert.match(e.body, /has no machines/);
    assert.deepEqual(b.startCalls, []);
  });
});

test('autostop stops idle machines, never one serving a request, never below min_machines_running', async () => {
  const svc = { ...web(80), autostart: true, autostop: 'stop' as const, min_machines_running: 1 };
  const h = holder('m3');
  const m3 = await new TestMachine('m3', [svc], h.handler).up();
  const m1 = await new TestMachine('m1', [svc]).up();
  const m2 = await new TestMachine('m2', [svc]).up();
  const b = new TestBackends().add('alpha', m3, m1, m2);
  await withProxy(b, { autostopIdleMs: 400 }, async (port) => {
    const held = call(port, 'alpha.localhost'); // ties go to the first listed: m3
    await until(() => h.held.length === 1, 5000, 'a long request on m3');
    // Steady traffic: least outstanding sends it to m1; m2 gets none.
    const served = new Set<string>();
    const end = Date.now() + 1000;
    while (Date.now() < end) {
      served.add((await call(port, 'alpha.localhost')).json().machine);
      await sleep(20);
    }
    assert.deepEqual([...served], ['m1']);
    assert.deepEqual(b.stopCalls, ['m2'], 'only the machine without traffic was stopped');
    h.releaseAll();
    assert.equal((await held).status, 200);
    await until(() => b.stopCalls.length === 2, 5000, 'one more idle machine to stop');
    await sleep(800);
    assert.equal(b.stopCalls.length, 2, 'the last machine stays: min_machines_running = 1');
    assert.equal([m1, m2, m3].filter((m) => m.state === 'started').length, 1);
  });
});

test('autostop with min_machines_running = 0 stops everything; the next request starts one again', async () => {
  const svc = { ...web(80), autostart: true, autostop: true };
  const m1 = await new TestMachine('m1', [svc]).up();
  const b = new TestBackends().add('alpha', m1);
  await withProxy(b, { autostopIdleMs: 300 }, async (port) => {
    assert.equal((await call(port, 'alpha.localhost')).status, 200);
    await until(() => m1.state === 'stopped', 5000, 'the idle machine to stop');
    const r = await call(port, 'alpha.localhost');
    assert.equal(r.status, 200);
    assert.deepEqual(b.startCalls, ['m1']);
  });
});

test('with checks configured, only machines passing them get traffic', async () => {
  const svc = { ...web(80), checks: [{ type: 'http' as const, path: '/healthz', interval: '200ms', timeout: '1s' }] };
  let sickHealthy = false;
  const healthy = await new TestMachine('good', [svc]).up();
  const sick = await new TestMachine('sick', [svc], (req, res) => {
    if (req.url === '/healthz') res.writeHead(sickHealthy ? 200 : 500).end();
    else echo('sick')(req, res);
  }).up();
  const b = new TestBackends().add('alpha', sick, healthy);
  await withProxy(b, {}, async (port) => {
    for (let i = 0; i < 8; i++) assert.equal((await call(port, 'alpha.localhost')).json().machine, 'good');
    sickHealthy = true;
    const seen = new Set<string>();
    const end = Date.now() + 5000;
    while (!seen.has('sick') && Date.now() < end) {
      seen.add((await call(port, 'alpha.localhost')).json().machine);
      await sleep(50);
    }
    assert.ok(seen.has('sick'), 'a machine whose checks pass again gets traffic');
  });
});
