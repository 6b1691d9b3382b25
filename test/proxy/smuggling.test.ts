import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import { TestBackends, TestMachine, withProxy, call, web } from './helpers.js';

// The proxy's own parser faces the client; the machine behind it is a real
// node:http server (llhttp). Every framing the proxy accepts must mean the
// same thing to both, and anything ambiguous must stop at the proxy.

/** Writes raw bytes, returns everything read until the proxy closes (or `ms`). */
function raw(port: number, data: string | Buffer[], ms = 3000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1');
    let text = '';
    const t = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false });
    }, ms);
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(t);
      resolve({ text, closed: true });
    });
    if (typeof data === 'string') s.write(data);
    else for (const d of data) s.write(d);
  });
}

/** A machine that records every request it parses (method url and body). */
async function recorder() {
  const seen: string[] = [];
  const m = await new TestMachine('m1', [web(80)], (req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${JSON.stringify(body)}`);
      res.end(`seen ${req.url}`);
    });
  }).up();
  return { m, seen };
}

const H = 'Host: alpha.localhost\r\n';

test('smuggling attempts get 400/501 and never reach the machine', async () => {
  const { m, seen } = await recorder();
  const b = new TestBackends().add('alpha', m);
  const attacks: [string, number][] = [
    [`POST / HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`, 400],
    [`POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n0\r\n\r\n`, 400],
    [`POST / HTTP/1.1\r\n${H}Content-Length: 0\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`, 400],
    [`POST / HTTP/1.1\r\n${H}Content-Length: 44, 0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`, 400],
    [`POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n`, 400],
    [`POST / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`, 400],
    [`POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, 501],
    [`POST / HTTP/1.1\r\n${H}X-Pad: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
    [`POST / HTTP/1.1\r\n${H}X-Pad: a\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
    [`GET / HTTP/1.1\r\n${H}${H}\r\n`, 400],
    [`GET / HTTP/1.1\r\n${H}X-Nul: a\x00b\r\n\r\n`, 400],
  ];
  await withProxy(b, {}, async (port) => {
    for (const [attack, status] of attacks) {
      const r = await raw(port, attack);
      assert.match(r.text, new RegExp(`^HTTP/1.1 ${status} `), `${JSON.stringify(attack)} → ${r.text}`);
      assert.match(r.text, /malformed HTTP request: /);
      assert.ok(r.closed, 'the connection is closed after a framing error');
    }
    assert.deepEqual(seen, [], 'the machine never saw any part of these requests');
  });
});

test('bad chunk framing mid-body: 400, and nothing after it reaches the machine as a request', async () => {
  const { m, seen } = await recorder();
  const b = new TestBackends().add('alpha', m);
  await withProxy(b, {}, async (port) => {
    for (const body of [
      `5x\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`,
      `3\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`,
      `ffffffffffffffffffff\r\nx\r\n0\r\n\r\n`,
      `5\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`,
    ]) {
      const r = await raw(port, `POST /up HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${body}`);
      assert.match(r.text, /^HTTP\/1.1 400 /, `${JSON.stringify(body)} → ${r.text}`);
      assert.match(r.text, /bad chunked encoding/);
      assert.ok(r.closed);
    }
    // The machine may have seen the start of an upload that was then cut; it
    // never completed one, and never saw /smuggled.
    assert.deepEqual(seen, []);
  });
});

test('a valid chunked body followed by a pipelined request: both answered in order, both through the proxy', async () => {
  const { m, seen } = await recorder();
  const b = new TestBackends().add('alpha', m);
  await withProxy(b, {}, async (port) => {
    const r = await raw(port, `POST /first HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /second HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    assert.ok(r.closed);
    const answers = r.text.split(/(?=HTTP\/1.1 )/);
    assert.equal(answers.length, 2, r.text);
    assert.match(answers[0]!, /^HTTP\/1.1 200 [\s\S]*Fly-Request-Id: [\s\S]*seen \/first$/);
    assert.match(answers[1]!, /^HTTP\/1.1 200 [\s\S]*Fly-Request-Id: [\s\S]*seen \/second$/);
    assert.deepEqual(seen, ['POST /first "hello"', 'GET /second ""']);
  });
});

test('pipelined requests split at odd byte boundaries keep their order and bodies', async () => {
  const { m, seen } = await recorder();
  const b = new TestBackends().add('alpha', m);
  await withProxy(b, {}, async (port) => {
    const all = Buffer.from(
      `POST /a HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabc` +
        `\r\nGET /b HTTP/1.1\r\n${H}\r\n` + // a stray CRLF between requests is allowed
        `POST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n` +
        `GET /d HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
    );
    const parts: Buffer[] = [];
    for (let i = 0; i < all.length; i += 7) parts.push(all.subarray(i, i + 7));
    const r = await raw(port, parts);
    assert.ok(r.closed);
    assert.deepEqual(seen, ['POST /a "abc"', 'GET /b ""', 'POST /c "xy"', 'GET /d ""']);
    assert.deepEqual(r.text.match(/seen \/\w/g), ['seen /a', 'seen /b', 'seen /c', 'seen /d']);
  });
});

test('a machine answering more than it framed: extra bytes are dropped and its connection is not reused', async () => {
  // Raw machine: every request is answered with "ok" plus a forged second response.
  let conns = 0;
  const tcp = createTcpServer((s) => {
    conns++;
    s.on('data', (d) => {
      if (d.includes('User-Agent: hangar-proxy')) return void s.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil');
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  const m = new TestMachine('raw', [web(80)]);
  m.port = (tcp.address() as { port: number }).port;
  m.state = 'started';
  const b = new TestBackends().add('alpha', m);
  try {
    await withProxy(b, {}, async (port) => {
      const r = await raw(port, `GET /1 HTTP/1.1\r\n${H}\r\n`, 500);
      assert.match(r.text, /\r\n\r\nok$/);
      const before = conns;
      const r2 = await raw(port, `GET /2 HTTP/1.1\r\n${H}\r\n`, 500);
      assert.match(r2.text, /\r\n\r\nok$/);
      assert.doesNotMatch(r2.text, /evil/);
      assert.equal(conns, before + 1, 'a fresh machine connection for the next request');
    });
  } finally {
    tcp.close();
  }
});

test('HTTP/1.0 clients get a chunked answer de-chunked and the connection closed; 100-continue is relayed', async () => {
  const m = await new TestMachine('m1', [web(80)], (req, res) => {
    if (req.url === '/chunked') {
      res.write('part1-');
      res.end('part2');
      return;
    }
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => res.end(`got ${body}`));
  }).up();
  const b = new TestBackends().add('alpha', m);
  await withProxy(b, {}, async (port) => {
    const r = await raw(port, `GET /chunked HTTP/1.0\r\n${H}\r\n`);
    assert.ok(r.closed);
    assert.match(r.text, /^HTTP\/1.1 200 /);
    assert.doesNotMatch(r.text, /Transfer-Encoding/i);
    assert.match(r.text, /Connection: close\r\n/);
    assert.ok(r.text.endsWith('\r\n\r\npart1-part2'), r.text);
    const r11 = await raw(port, `GET /chunked HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    assert.match(r11.text, /Transfer-Encoding: chunked\r\n/);
    assert.match(r11.text, /\r\n\r\n6\r\npart1-\r\n5\r\npart2\r\n0\r\n\r\n$/);

    // Expect: 100-continue: the interim answer comes before the body is sent.
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (d) => (text += d));
    s.write(`POST /up HTTP/1.1\r\n${H}Content-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
    const end = Date.now() + 3000;
    while (!text.includes('100 Continue') && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.match(text, /^HTTP\/1.1 100 Continue\r\n\r\n/);
    s.write('data');
    await new Promise((r) => s.on('close', r));
    assert.match(text, /HTTP\/1.1 200 [\s\S]*got data$/);
  });
});

test('keep-alive clients survive error answers for bodyless requests; unknown hosts still 404', async () => {
  const { m } = await recorder();
  const b = new TestBackends().add('alpha', m);
  await withProxy(b, {}, async (port) => {
    const r = await raw(port, `GET / HTTP/1.1\r\nHost: nope.localhost\r\n\r\nGET /after HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    assert.match(r.text, /^HTTP\/1.1 404 [\s\S]*there is no app named "nope"[\s\S]*HTTP\/1.1 200 [\s\S]*seen \/after$/);
    assert.equal((await call(port, 'alpha.localhost', { method: 'HEAD' })).status, 200);
  });
});
