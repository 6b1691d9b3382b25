import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONN_KEEP_ALIVE, ChunkedReader, HttpError, headEnd, parseRequestHead, parseResponseHead } from '../../src/proxy/http1.js';
import { downstreamHead, upstreamHead } from '../../src/proxy/headers.js';

const req = (s: string) => {
  const b = Buffer.from(s, 'latin1');
  const end = headEnd(b);
  assert.ok(end > 0, 'head is complete');
  return parseRequestHead(b, 0, end);
};
const rejects = (s: string, status: number, re: RegExp) => {
  assert.throws(() => req(s), (e: unknown) => e instanceof HttpError && e.status === status && re.test(e.message), s);
};

test('parses a request head: method, host, framing, connection', () => {
  const h = req('POST /a?b=1 HTTP/1.1\r\nHost: Alpha.localhost:8080\r\nContent-Length: 12\r\nConnection: Keep-Alive, X-Drop\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8\r\n\r\n');
  assert.equal(h.method, 'POST');
  assert.equal(h.host, 'Alpha.localhost:8080');
  assert.equal(h.contentLength, 12);
  assert.equal(h.chunked, false);
  assert.deepEqual(h.connection, ['x-drop'], 'names of headers Connection lists (standard tokens are flags)');
  assert.equal(h.connFlags, CONN_KEEP_ALIVE);
  assert.equal(h.forwardedFor, '1.2.3.4, 5.6.7.8');
  assert.equal(h.close, false);
  assert.equal(req('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n').close, true);
  assert.equal(req('GET / HTTP/1.0\r\n\r\n').close, true, 'HTTP/1.0 closes unless keep-alive');
  assert.equal(req('GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tChunked\r\n\r\n').chunked, true);
  assert.equal(req('GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n').upgrade, 'websocket');
  assert.equal(req('GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n').upgrade, undefined, 'Upgrade without Connection: upgrade is no upgrade');
});

test('request smuggling vectors and malformed heads are rejected', () => {
  rejects('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /both Content-Length and Transfer-Encoding/);
  rejects('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n', 400, /both Content-Length and Transfer-Encoding/);
  rejects('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n', 400, /more than one Content-Length/);
  rejects('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n', 400, /more than one Content-Length/);
  rejects('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n', 400, /invalid Content-Length/);
  rejects('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n', 400, /invalid Content-Length/);
  rejects('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n', 400, /invalid Content-Length/);
  rejects('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n', 400, /invalid Content-Length/);
  rejects('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /more than one Transfer-Encoding/);
  rejects('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n', 501, /not supported/);
  rejects('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n', 501, /not supported/);
  rejects('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501, /not supported/);
  rejects('POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /HTTP\/1.0/);
  // Whitespace before the colon: some servers strip it, some do not.
  rejects('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n', 400, /token followed directly by a colon/);
  rejects('POST / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n', 400, /obsolete line folding/);
  rejects('POST / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tTransfer-Encoding: chunked\r\n\r\n', 400, /obsolete line folding/);
  rejects('GET / HTTP/1.1\r\nHost: a\r\nX-A: b\nContent-Length: 5\r\n\r\n', 400, /bare CR or bare LF/);
  rejects('GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rContent-Length: 5\r\n\r\n', 400, /bare CR or bare LF/);
  rejects('GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n', 400, /control character/);
  rejects('GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n', 400, /token followed directly by a colon/);
  rejects('GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n', 400, /token followed directly by a colon/);
  rejects('GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400, /more than one Host/);
  rejects('GET / HTTP/1.1\r\nX: a\r\n\r\n', 400, /without a Host/);
  rejects('GET  / HTTP/1.1\r\nHost: a\r\n\r\n', 400, /malformed request line/);
  rejects('GET / HTTP/1.1 \r\nHost: a\r\n\r\n', 400, /malformed request line/);
  rejects('GET / HTTP/2.0\r\nHost: a\r\n\r\n', 400, /malformed request line/);
  rejects('GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n', 400, /malformed request line/);
  rejects('G(T / HTTP/1.1\r\nHost: a\r\n\r\n', 400, /malformed request line/);
  rejects('CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n', 501, /CONNECT/);
});

test('chunked reader: framing found exactly; bad sizes and extra data rejected', () => {
  const read = (s: string, decode = false) => {
    const r = new ChunkedReader(400);
    const b = Buffer.from(s, 'latin1');
    const out: Buffer[] = [];
    const used = r.feed(b, 0, b.length, decode ? (d) => out.push(Buffer.from(d)) : undefined);
    return { used, done: r.done, data: Buffer.concat(out).toString('latin1') };
  };
  assert.deepEqual(read('5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1', true), { used: 15, done: true, data: 'hello' });
  assert.deepEqual(read('A;ext=1\r\n0123456789\r\n0\r\nTrailer-X: y\r\n\r\n', true), { used: 40, done: true, data: '0123456789' });
  assert.deepEqual(read('5\r\nhel'), { used: 6, done: false, data: '' });
  // Byte by byte gives the same answer.
  const r = new ChunkedReader(400);
  const all = Buffer.from('3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n');
  let consumed = 0;
  for (let i = 0; i < all.length && !r.done; i++) consumed += r.feed(all, i, i + 1) - i;
  assert.equal(consumed, all.length);
  assert.ok(r.done);

  const bad = (s: string, re: RegExp) => assert.throws(() => read(s), (e: unknown) => e instanceof HttpError && re.test(e.message), s);
  bad('5x\r\nhello\r\n0\r\n\r\n', /unexpected character after the chunk size/);
  bad('-5\r\nhello\r\n', /not a hex number/);
  bad('0x5\r\nhello\r\n', /unexpected character/);
  bad(' 5\r\nhello\r\n', /not a hex number/);
  bad('5 \r\nhello\r\n', /unexpected character/);
  bad('ffffffffffffffffff\r\n', /too large/);
  bad('3\r\nhello\r\n0\r\n\r\n', /longer than its size/);
  bad('5\nhello\r\n', /unexpected character after the chunk size/);
  bad('5\r\nhello\n0\r\n\r\n', /longer than its size|not followed by CRLF/);
  bad('5;a\x00b\r\nhello\r\n', /control character/);
  bad('0\r\n folded: x\r\n\r\n', /obsolete line folding/);
  bad('0\r\nno-colon\r\n\r\n', /without a colon/);
  bad('0\r\n\n', /control character in the trailer/);
});

test('responses: Transfer-Encoding wins over Content-Length, conflicting lengths rejected', () => {
  const res = (s: string) => {
    const b = Buffer.from(s, 'latin1');
    return parseResponseHead(b, 0, headEnd(b));
  };
  const te = res('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n');
  assert.equal(te.chunked, true);
  assert.equal(te.contentLength, -1);
  const out = downstreamHead(te, 'rid', '').toString('latin1');
  assert.doesNotMatch(out, /Content-Length/i, 'the length is not forwarded next to chunked framing');
  assert.equal(res('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n').contentLength, 5);
  assert.throws(() => res('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n'), /conflicting Content-Length/);
  assert.throws(() => res('HTTP/1.1 2000 OK\r\n\r\n'), /malformed status line/);
  assert.throws(() => res('HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n'), /bare CR or bare LF/);
  assert.equal(res('HTTP/1.1 204\r\n\r\n').status, 204);
  assert.equal(res('HTTP/1.0 200 OK\r\n\r\n').keepAlive, false);
  assert.equal(res('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n').keepAlive, false);
});

test('forwarded heads keep the bytes of kept headers and drop hop-by-hop ones', () => {
  const h = req('GET /p HTTP/1.0\r\nHost: a.localhost\r\nX-Custom:  v  \r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nFly-Client-IP: 6.6.6.6\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n');
  const up = upstreamHead(h, { requestId: 'rid-1', clientIp: '127.0.0.1', port: 8080 }).toString('latin1');
  assert.ok(up.startsWith('GET /p HTTP/1.1\r\nHost: a.localhost\r\nX-Custom:  v  \r\n'), up);
  for (const gone of [/X-Drop/, /Keep-Alive/, /^TE:/m, /6\.6\.6\.6/, /^Connection/m]) assert.doesNotMatch(up, gone);
  assert.match(up, /\r\nX-Forwarded-For: 1\.1\.1\.1, 127\.0\.0\.1\r\n/);
  assert.match(up, /\r\nX-Forwarded-Host: a\.localhost\r\n/);
  assert.match(up, /\r\nFly-Request-Id: rid-1\r\n\r\n$/);
});

test('method and Host strings: common methods and a repeated Host are reused, every other value decoded', () => {
  const seq = ['alpha.localhost', 'bravo.localhost', 'bravo.localhost', 'BRAVO.localhost', 'bravo.localhos', 'alpha.localhost'];
  for (const host of seq) assert.equal(req(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`).host, host);
  for (const m of ['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'PROPFIND', 'GETX', 'GE', 'get']) {
    assert.equal(req(`${m} / HTTP/1.1\r\nHost: a\r\n\r\n`).method, m);
  }
});
