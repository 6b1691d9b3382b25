import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { rawIoEnabled, releasedBufferCount, useRawIo } from '../../src/proxy/sockio.js';
import { TestBackends, TestMachine, withProxy, echo, sleep, web } from './helpers.js';

/*
 * The proxy's socket I/O (sockio.ts) on both of its paths: the raw handle
 * path (Node 20 has every internal it needs, so it must be the one in use)
 * and the public stream API it falls back to. Bodies are random bytes and
 * both ends read slowly, so writes the kernel cannot take at once (and
 * reused read buffers) are exercised: any byte reused too early changes a hash.
 */

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('the raw socket path is available on this Node', { skip: process.env.HANGAR_PROXY_STREAM_IO === '1' && 'HANGAR_PROXY_STREAM_IO=1 turns it off' }, () => {
  assert.equal(rawIoEnabled(), true);
});

for (const raw of [true, false]) {
  const mode = raw ? 'raw handles' : 'stream fallback';

  test(`${mode}: large bodies both ways with slow readers arrive intact`, async () => {
    useRawIo(raw);
    try {
      const download = randomBytes(6 * 1024 * 1024 + 123);
      const upload = randomBytes(5 * 1024 * 1024 + 77);
      const m = await new TestMachine('m1', [web(80)], (req, res) => {
        if (req.url === '/up') {
          const h = createHash('sha256');
          let n = 0;
          req.on('data', (c: Buffer) => {
            h.update(c);
            n += c.length;
            // A slow machine: the proxy's writes to it back up.
            req.pause();
            setTimeout(() => req.resume(), 1);
          });
          req.on('end', () => res.end(`${n} ${h.digest('hex')}`));
        } else {
          res.writeHead(200, { 'content-length': download.length });
          res.end(download);
        }
      }).up();
      const b = new TestBackends().add('alpha', m);
      await withProxy(b, {}, async (port) => {
        const up = await new Promise<string>((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/up', headers: { host: 'alpha.localhost', 'content-length': upload.length }, agent: false }, (res) => {
            let s = '';
            res.on('data', (c) => (s += c));
            res.on('end', () => resolve(s));
          });
          req.on('error', reject);
          // In pieces, so the proxy reads many chunks into its read buffer.
          let o = 0;
          const next = () => {
            while (o < upload.length) {
              const end = Math.min(upload.length, o + 100_000);
              const ok = req.write(upload.subarray(o, end));
              o = end;
              if (!ok) return void req.once('drain', next);
            }
            req.end();
          };
          next();
        });
        assert.equal(up, `${upload.length} ${sha(upload)}`);

        const down = await new Promise<Buffer>((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port, path: '/down', headers: { host: 'alpha.localhost' }, agent: false }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => {
              chunks.push(c);
              // A slow client: the proxy's writes to it back up.
              res.pause();
              setTimeout(() => res.resume(), 1);
            });
            res.on('end', () => resolve(Buffer.concat(chunks)));
          });
          req.on('error', reject);
          req.end();
        });
        assert.equal(down.length, download.length);
        assert.equal(sha(down), sha(download));
      });
    } finally {
      useRawIo(true);
    }
  });

  test(`${mode}: pipelined requests split at odd bytes, keep-alive, and FIN from the client`, async () => {
    useRawIo(raw);
    try {
      const b = new TestBackends().add('alpha', await new TestMachine('m1', [web(80)], echo('m1')).up());
      await withProxy(b, {}, async (port) => {
        const reqs = Array.from({ length: 5 }, (_, i) => `POST /p${i} HTTP/1.1\r\nHost: alpha.localhost\r\nContent-Length: 3\r\n\r\nb${i}!`).join('');
        const got = await new Promise<string>((resolve, reject) => {
          const s = connect(port, '127.0.0.1');
          let out = '';
          s.on('data', (c) => (out += c.toString('latin1')));
          s.on('end', () => resolve(out));
          s.on('error', reject);
          void (async () => {
            for (let i = 0; i < reqs.length; i += 7) {
              s.write(reqs.slice(i, i + 7));
              await sleep(1);
            }
            // Give the answers time, then FIN: the proxy ends its side too.
            await sleep(300);
            s.end();
          })();
        });
        const bodies = [...got.matchAll(/\r\n\r\n(\{[^\r]*?\})(?=HTTP\/1\.1|$)/g)].map((x) => JSON.parse(x[1]!) as { url: string; body: string });
        assert.deepEqual(
          bodies.map((x) => `${x.url} ${x.body}`),
          [0, 1, 2, 3, 4].map((i) => `/p${i} b${i}!`),
        );
      });
    } finally {
      useRawIo(true);
    }
  });
}

test('idle keep-alive clients give their read buffer back; their next requests, arriving together, keep their own bytes', { skip: !rawIoEnabled() && 'raw socket path off' }, async () => {
  const b = new TestBackends().add('alpha', await new TestMachine('m1', [web(80)], echo('m1')).up());
  // Short timeouts make the proxy's sweep (which releases buffers) run every 100 ms.
  await withProxy(b, { releaseIdleBufferMs: 50, headersTimeoutMs: 400 }, async (port) => {
    const clients = await Promise.all(
      Array.from({ length: 6 }, () => new Promise<Socket>((resolve, reject) => {
        const s = connect(port, '127.0.0.1', () => resolve(s));
        s.on('error', reject);
      })),
    );
    const ask = (s: Socket, body: string) =>
      new Promise<{ url: string; body: string }>((resolve) => {
        let out = '';
        const onData = (c: Buffer) => {
          out += c.toString('latin1');
          const m = /\r\n\r\n(\{.*\})$/s.exec(out);
          if (m) {
            s.off('data', onData);
            resolve(JSON.parse(m[1]!));
          }
        };
        s.on('data', onData);
        s.write(`POST /${body} HTTP/1.1\r\nHost: alpha.localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      });
    const first = await Promise.all(clients.map((s, i) => ask(s, `first-${i}`)));
    assert.deepEqual(first.map((r) => r.body), clients.map((_, i) => `first-${i}`));
    const before = releasedBufferCount();
    await sleep(600);
    assert.ok(releasedBufferCount() - before >= clients.length, `every idle client gave its buffer back (${releasedBufferCount() - before})`);
    // All at once: their reads land in the one shared idle buffer, one after another.
    const second = await Promise.all(clients.map((s, i) => ask(s, `second-${i}-${'x'.repeat(i * 500)}`)));
    assert.deepEqual(second.map((r) => `${r.url} ${r.body}`), clients.map((_, i) => `/second-${i}-${'x'.repeat(i * 500)} second-${i}-${'x'.repeat(i * 500)}`));
    for (const s of clients) s.destroy();
  });
});
