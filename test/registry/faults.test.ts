import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { startRegistry, sha256, storedBlobFiles, uploadFiles, rawHttp } from './helpers.js';

const HANGAR = fileURLToPath(new URL('../../../bin/hangar', import.meta.url));

interface Child {
  proc: ChildProcess;
  url: string;
}

async function spawnDaemon(dataDir: string): Promise<Child> {
  const proc = spawn(process.execPath, [HANGAR, 'daemon', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--proxy-listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HANGAR_LOG_LEVEL: 'error' },
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /ready on (http:\/\/[0-9.:]+)/.exec(out);
      if (m) resolve(m[1]!);
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`daemon exited (${code}): ${out}`)));
    setTimeout(() => reject(new Error(`daemon did not start: ${out}`)), 30_000).unref();
  });
  return { proc, url };
}

function killed(c: Child): Promise<void> {
  return new Promise((resolve) => {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) return resolve();
    c.proc.once('exit', () => resolve());
  });
}

const MB = 1 << 20;
const TOTAL = 200 * MB;

/** A deterministic 200 MB stream: chunk i is a random 1 MiB buffer stamped with i. */
function payload(base: Buffer, from = 0): Readable {
  let offset = from;
  return new Readable({
    highWaterMark: MB,
    read() {
      if (offset >= TOTAL) return this.push(null);
      const i = Math.floor(offset / MB);
      const chunk = Buffer.from(base);
      chunk.writeUInt32BE(i, 0);
      const slice = chunk.subarray(offset - i * MB);
      offset += slice.length;
      this.push(slice);
    },
  });
}

function digestOfPayload(base: Buffer): string {
  const h = createHash('sha256');
  for (let i = 0; i < TOTAL / MB; i++) {
    const c = Buffer.from(base);
    c.writeUInt32BE(i, 0);
    h.update(c);
  }
  return `sha256:${h.digest('hex')}`;
}

function streamRequest(url: string, method: string, path: string, auth: string, body: Readable, headers: Record<string, string> = {}) {
  const u = new URL(url);
  return new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method, path, headers: { authorization: auth, 'content-type': 'application/octet-stream', ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    body.on('error', reject);
    body.pipe(req);
  });
}

test('kill -9 during a 200 MB push: no partial blob is visible after restart, and the push completes', { timeout: 240_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'hangar-kill-'));
  let child: Child | undefined;
  try {
    child = await spawnDaemon(dataDir);
    const admin = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const auth = `Bearer ${admin}`;
    const mk = await fetch(`${child.url}/v1/apps`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: JSON.stringify({ app_name: 'big', org_slug: 'personal' }) });
    assert.equal(mk.status, 201);

    const base = randomBytes(MB);
    const digest = digestOfPayload(base);
    const post = await rawHttp(child.url, 'POST', '/v2/big/blobs/uploads/', { authorization: auth });
    assert.equal(post.status, 202);
    const loc = String(post.headers.location);
    const sessionFile = join(dataDir, 'registry', 'uploads', loc.split('/').pop()!);

    // Stream the whole blob in one PATCH; kill the daemon once ~half has landed on disk.
    const upload = streamRequest(child.url, 'PATCH', loc, auth, payload(base)).catch((e: Error) => e);
    const c = child;
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        const size = existsSync(sessionFile) ? statSync(sessionFile).size : 0;
        if (size > 80 * MB) {
          clearInterval(timer);
          c.proc.kill('SIGKILL');
          resolve();
        }
      }, 20);
      setTimeout(() => reject(new Error('upload did not progress')), 120_000).unref();
    });
    await killed(child);
    assert.ok((await upload) instanceof Error, 'the client saw the connection die');

    const partial = statSync(sessionFile).size;
    assert.ok(partial > 0 && partial < TOTAL);
    child = await spawnDaemon(dataDir);

    // Nothing partial is visible: not over HTTP, not in the store, not in the database.
    const head = await rawHttp(child.url, 'HEAD', `/v2/big/blobs/${digest}`, { authorization: auth });
    assert.equal(head.status, 404);
    assert.equal(storedBlobFiles(dataDir).length, 0);
    const db = new Database(join(dataDir, 'hangar.db'), { readonly: true });
    assert.equal((db.prepare('SELECT count(*) AS n FROM registry_blobs').get() as { n: number }).n, 0);
    db.close();

    // The session survived the restart; the client resumes where the server says it is.
    const status = await rawHttp(child.url, 'GET', loc, { authorization: auth });
    assert.equal(status.status, 204);
    const have = Number(/^0-(\d+)$/.exec(String(status.headers.range))![1]) + 1;
    assert.equal(have, partial);
    const rest = await streamRequest(child.url, 'PATCH', loc, auth, payload(base, have), { 'content-range': `${have}-${TOTAL - 1}` });
    assert.equal(rest.status, 202);
    const put = await rawHttp(child.url, 'PUT', `${loc}?digest=${digest}`, { authorization: auth });
    assert.equal(put.status, 201);

    // A fresh retry of the whole push (what skopeo/docker do) succeeds as well.
    const post2 = await rawHttp(child.url, 'POST', '/v2/big/blobs/uploads/', { authorization: auth });
    const retry = await streamRequest(child.url, 'PUT', `${post2.headers.location}?digest=${digest}`, auth, payload(base));
    assert.equal(retry.status, 201);

    const files = storedBlobFiles(dataDir);
    assert.equal(files.length, 1);
    const h = createHash('sha256');
    for await (const chunk of createReadStream(files[0]!)) h.update(chunk as Buffer);
    assert.equal(`sha256:${h.digest('hex')}`, digest);
    assert.deepEqual(uploadFiles(dataDir), []);
  } finally {
    if (child && child.proc.exitCode === null && child.proc.signalCode === null) {
      child.proc.kill('SIGTERM');
      await killed(child);
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('20 concurrent pushes of the same blob leave one intact blob', async () => {
  const r = await startRegistry();
  try {
    const data = randomBytes(4 * MB);
    const d = sha256(data);
    const pushes = Array.from({ length: 20 }, async (_, i) => {
      const repo = i % 2 ? 'demo' : 'other';
      if (i % 3 === 0) return (await r.http('POST', `/v2/${repo}/blobs/uploads/?digest=${d}`, { body: data })).status;
      const post = await r.http('POST', `/v2/${repo}/blobs/uploads/`);
      if (i % 3 === 1) return (await r.http('PUT', `${post.headers.location}?digest=${d}`, { body: data })).status;
      await r.http('PATCH', String(post.headers.location), { body: data.subarray(0, MB) });
      return (await r.http('PUT', `${post.headers.location}?digest=${d}`, { body: data.subarray(MB), headers: { 'content-range': `${MB}-${data.length - 1}` } })).status;
    });
    assert.deepEqual(await Promise.all(pushes), Array(20).fill(201));
    const files = storedBlobFiles(r.dataDir);
    assert.equal(files.length, 1);
    assert.deepEqual(readFileSync(files[0]!), data);
    assert.deepEqual(uploadFiles(r.dataDir), []);
    for (const repo of ['demo', 'other']) {
      const got = await r.http('GET', `/v2/${repo}/blobs/${d}`);
      assert.equal(sha256(got.body), d);
    }
    const n = r.daemon.store.db.prepare('SELECT count(*) AS n FROM registry_blobs WHERE digest = ?').get(d) as { n: number };
    assert.equal(n.n, 1);
  } finally {
    await r.close();
  }
});
