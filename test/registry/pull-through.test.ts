/**
 * The docker.io/ mirror's pull-through against a real upstream: Debian's
 * docker-registry on 127.0.0.1 behind a Docker-style token service, with a
 * counting proxy in front so the tests see every request the mirror makes.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '../../src/shared/process.js';
import type { PullThroughOptions } from '../../src/registry/index.js';
import { isPrivateAddress, readAll, UpstreamClient, UpstreamError } from '../../src/registry/upstream.js';
import { createServer as createNetServer } from 'node:net';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { hangar } from '../helpers/cli.js';
import { startChildDaemon, type ChildDaemon } from '../helpers/child-daemon.js';
import { writeBusyboxImage } from '../fixtures/busybox-image.js';
import { writeOciImage, writeOciIndex } from '../fixtures/oci-layout.js';
import { makeTar } from '../fixtures/tar-writer.js';
import { freePort, pushLayout, startRegistry as startUpstream, startTokenFront, type TestRegistry, type TokenFront } from '../fixtures/registry.js';
import { rawHttp, type HttpResult } from './helpers.js';

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Counter {
  host: string;
  /** "METHOD /path" of every request forwarded (or redirected). */
  requests: string[];
  /** The same, without the 401s that only ask for a token. */
  served: string[];
  count(method: string, path: RegExp | string): number;
  stop(): Promise<void>;
}

/**
 * A loopback HTTP proxy to `target` that records each request; paths matching
 * `redirect` get a 307 instead; successful answers for paths matching
 * `corrupt` are altered (a manifest gets a trailing newline, a blob its last
 * byte flipped), as a broken or malicious upstream would.
 */
async function startCounter(target: string, redirect?: { match: RegExp; location: string }, corrupt?: RegExp): Promise<Counter> {
  const requests: string[] = [];
  const served: string[] = [];
  const [thost, tport] = target.split(':') as [string, string];
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (redirect && redirect.match.test(req.url ?? '')) {
      res.writeHead(307, { location: redirect.location, 'content-length': '0' }).end();
      return;
    }
    const up = httpRequest({ host: thost, port: Number(tport), path: req.url, method: req.method, headers: { ...req.headers, host: target } }, (ures) => {
      if (ures.statusCode !== 401) served.push(`${req.method} ${req.url}`);
      if (corrupt?.test(req.url ?? '') && ures.statusCode === 200 && req.method === 'GET') {
        const chunks: Buffer[] = [];
        ures.on('data', (c: Buffer) => chunks.push(c));
        ures.on('end', () => {
          let body = Buffer.concat(chunks);
          if (req.url!.includes('/manifests/')) body = Buffer.concat([body, Buffer.from('\n')]);
          else body[body.length - 1] ^= 0xff;
          res.writeHead(200, { ...ures.headers, 'content-length': String(body.length) }).end(body);
        });
        return;
      }
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      ures.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${port}`,
    requests,
    served,
    count: (method, path) => served.filter((r) => r.startsWith(`${method} `) && (typeof path === 'string' ? r.slice(method.length + 1) === path : path.test(r))).length,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

interface Hangar extends TestDaemon {
  host: string;
  token: string;
  http(method: string, path: string, headers?: Record<string, string>): Promise<HttpResult>;
  skopeo(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
}

async function startHangar(mirror: PullThroughOptions | string, dataDir?: string): Promise<Hangar> {
  const t = await startTestDaemon({ mirrorUpstream: mirror, ...(dataDir ? { dataDir } : {}) });
  const acme = t.daemon.accounts.findOrg('acme') ?? t.daemon.accounts.createOrg('acme');
  if (!t.daemon.accounts.findApp('demo')) t.daemon.accounts.createApp('demo', acme.id);
  const token = t.daemon.accounts.createToken('ci', acme.id).token;
  const host = t.daemon.url.replace(/^http:\/\//, '');
  const basic = 'Basic ' + Buffer.from(`hangar:${token}`).toString('base64');
  return {
    ...t,
    host,
    token,
    http: (method, path, headers = {}) => rawHttp(t.daemon.url, method, path, { authorization: basic, accept: MANIFEST_ACCEPT, ...headers }),
    skopeo: async (...args) => {
      const r = await run('skopeo', args, { timeoutMs: 120_000, allowFailure: true });
      return r;
    },
  };
}

const ociError = (r: HttpResult) => (r.json() as { errors: Array<{ code: string; message: string }> }).errors[0]!;

/** GET straight from the upstream registry (no auth: docker-registry itself is open). */
async function upstreamGet(reg: TestRegistry, path: string): Promise<HttpResult> {
  return rawHttp(`http://${reg.host}`, 'GET', path, { accept: MANIFEST_ACCEPT });
}

async function waitFor(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe('pull-through from an upstream registry', () => {
  let upstream: TestRegistry;
  let front: TokenFront;
  let counter: Counter;
  let h: Hangar;
  let tmp: string;
  let layout: string;
  let bbox: ReturnType<typeof writeBusyboxImage>;
  let dataDir: string;
  const amdImage: { digest?: string; arm?: string } = {};

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'hangar-pullthrough-'));
    layout = join(tmp, 'layout');
    upstream = await startUpstream();
    front = await startTokenFront(upstream.host, { username: 'u', password: 'p', publicRepos: ['library/bbox', 'library/multi', 'library/redir'] });
    counter = await startCounter(front.host, { match: /\/library\/redir\//, location: 'http://169.254.169.254/latest/meta-data' });
    bbox = writeBusyboxImage(layout, { tag: 'v1', extraLayers: [{ tar: makeTar([{ name: 'data/random.bin', body: randomBytes(300_000) }]) }] });
    pushLayout(layout, 'v1', `${upstream.host}/library/bbox:v1`);
    const arm = writeOciImage(layout, { tag: 'arm', architecture: 'arm64', layers: [{ tar: makeTar([{ name: 'arm', body: 'arm' }]) }] });
    const amd = writeOciImage(layout, { tag: 'amd', layers: [{ tar: makeTar([{ name: 'amd', body: randomBytes(1000).toString('hex') }]) }] });
    writeOciIndex(layout, 'multi', [
      { digest: arm.manifestDigest, size: arm.manifest.length, platform: { os: 'linux', architecture: 'arm64' } },
      { digest: amd.manifestDigest, size: amd.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
    ]);
    pushLayout(layout, 'multi', `${upstream.host}/library/multi:1`, { all: true });
    amdImage.digest = amd.manifestDigest;
    amdImage.arm = arm.manifestDigest;
    dataDir = join(tmp, 'data');
    h = await startHangar({ upstream: `http://${counter.host}` }, dataDir);
  });

  after(async () => {
    await h?.close();
    await Promise.all([counter?.stop(), front?.stop(), upstream?.stop()]);
    rmSync(tmp, { recursive: true, force: true });
  });

  test('concurrent first pulls with skopeo fetch each object once; the bytes are the upstream bytes', async () => {
    const outs = [0, 1, 2].map((i) => join(tmp, `pull-${i}`));
    const results = await Promise.all(
      outs.map((o) => h.skopeo('copy', '--src-tls-verify=false', '--src-creds', `hangar:${h.token}`, `docker://${h.host}/docker.io/library/bbox:v1`, `oci:${o}:v1`)),
    );
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    assert.equal(counter.count('GET', '/v2/library/bbox/manifests/v1'), 1, counter.requests.join('\n'));
    for (const d of [bbox.configDigest, ...bbox.layerDigests]) assert.equal(counter.count('GET', `/v2/library/bbox/blobs/${d}`), 1, `${d}\n${counter.requests.join('\n')}`);
    // Anonymous token auth was used: the front issued a token for the pull scope.
    assert.ok(front.issued.some((i) => i.scope === 'repository:library/bbox:pull' && i.user === null));

    const mine = await h.http('GET', '/v2/docker.io/library/bbox/manifests/v1');
    const theirs = await upstreamGet(upstream, '/v2/library/bbox/manifests/v1');
    assert.equal(mine.status, 200);
    assert.deepEqual(mine.body, theirs.body);
    assert.equal(mine.headers['docker-content-digest'], bbox.manifestDigest);
    for (const d of bbox.layerDigests) {
      const blob = readFileSync(join(outs[0]!, 'blobs', 'sha256', d.slice(7)));
      assert.equal(sha256(blob), d);
      assert.deepEqual(blob, (await upstreamGet(upstream, `/v2/library/bbox/blobs/${d}`)).body);
    }
    // A pulled tag is tagged here like a pushed one.
    assert.deepEqual((await h.http('GET', '/v2/docker.io/library/bbox/tags/list')).json().tags, ['v1']);
  });

  test('an index is stored as is; its linux/amd64 image is prefetched, other platforms come on demand', async () => {
    const idx = await h.http('GET', '/v2/docker.io/library/multi/manifests/1');
    assert.equal(idx.status, 200);
    assert.deepEqual(idx.body, (await upstreamGet(upstream, '/v2/library/multi/manifests/1')).body);
    const meta = h.daemon.registry.meta;
    await waitFor(() => meta.manifest('docker.io/library/multi', amdImage.digest!) !== undefined, 'the amd64 manifest');
    const amdManifest = JSON.parse((await h.http('GET', `/v2/docker.io/library/multi/manifests/${amdImage.digest}`)).body.toString()) as { layers: Array<{ digest: string }> };
    await waitFor(() => amdManifest.layers.every((l) => meta.repoBlob('docker.io/library/multi', l.digest) !== undefined), 'the amd64 layers');
    assert.equal(meta.manifest('docker.io/library/multi', amdImage.arm!), undefined);
    assert.equal(counter.count('GET', `/v2/library/multi/manifests/${amdImage.arm}`), 0);
    const arm = await h.http('GET', `/v2/docker.io/library/multi/manifests/${amdImage.arm}`);
    assert.equal(arm.status, 200);
    assert.equal(sha256(arm.body), amdImage.arm);
    assert.equal(counter.count('GET', `/v2/library/multi/manifests/${amdImage.arm}`), 1);
  });

  test('an unknown tag or blob is MANIFEST_UNKNOWN / BLOB_UNKNOWN, naming the upstream', async () => {
    const m = await h.http('GET', '/v2/docker.io/library/bbox/manifests/no-such-tag');
    assert.equal(m.status, 404);
    assert.equal(ociError(m).code, 'MANIFEST_UNKNOWN');
    assert.match(ociError(m).message, new RegExp(counter.host.replace(/\./g, '\\.')));
    const b = await h.http('GET', `/v2/docker.io/library/bbox/blobs/sha256:${'0'.repeat(64)}`);
    assert.equal(b.status, 404);
    assert.equal(ociError(b).code, 'BLOB_UNKNOWN');
    const head = await h.http('HEAD', '/v2/docker.io/library/bbox/manifests/no-such-tag');
    assert.equal(head.status, 404);
  });

  test("an app's own repository never pulls through", async () => {
    const before = counter.requests.length;
    const m = await h.http('GET', '/v2/demo/manifests/v1');
    assert.equal(m.status, 404);
    assert.equal(ociError(m).code, 'MANIFEST_UNKNOWN');
    const b = await h.http('GET', `/v2/demo/blobs/${bbox.layerDigests[0]}`);
    assert.equal(b.status, 404);
    assert.equal(ociError(b).code, 'BLOB_UNKNOWN');
    // (Background prefetches of earlier tests may still be talking to the upstream: look only for this repo.)
    const mine = counter.requests.slice(before).filter((r) => /\/demo\//.test(r));
    assert.deepEqual(mine, []);
  });

  test('a redirect to a link-local address is refused', async () => {
    const r = await h.http('GET', '/v2/docker.io/library/redir/manifests/v1');
    assert.equal(r.status, 502);
    assert.equal(ociError(r).code, 'UNAVAILABLE');
    assert.match(ociError(r).message, /refusing/);
  });

  test('with the upstream down, cached images still pull and a new one fails clearly', async () => {
    await counter.stop();
    const out = join(tmp, 'pull-offline');
    const r = await h.skopeo('copy', '--src-tls-verify=false', '--src-creds', `hangar:${h.token}`, `docker://${h.host}/docker.io/library/bbox:v1`, `oci:${out}:v1`);
    assert.equal(r.code, 0, r.stderr);
    const miss = await h.http('GET', '/v2/docker.io/library/debian/manifests/bookworm-slim');
    assert.equal(miss.status, 503);
    const e = ociError(miss);
    assert.equal(e.code, 'UNAVAILABLE');
    assert.ok(e.message.includes(`http://${counter.host}`), e.message);
    assert.match(e.message, /hangar images seed/);
  });

  test('pulled images survive a restart and are served with the pull-through off', async () => {
    await h.close();
    h = await startHangar('off', dataDir);
    const out = join(tmp, 'pull-restarted');
    const r = await h.skopeo('copy', '--src-tls-verify=false', '--src-creds', `hangar:${h.token}`, `docker://${h.host}/docker.io/library/bbox:v1`, `oci:${out}:v1`);
    assert.equal(r.code, 0, r.stderr);
    const miss = await h.http('GET', '/v2/docker.io/library/bbox/manifests/other');
    assert.equal(miss.status, 404);
    assert.equal(ociError(miss).code, 'MANIFEST_UNKNOWN');
  });
});

describe('pull-through tags: TTL, pushed tags, outages', () => {
  let upstream: TestRegistry;
  let counter: Counter;
  let h: Hangar;
  let tmp: string;
  const TTL = 400;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'hangar-pullthrough-ttl-'));
    upstream = await startUpstream();
    counter = await startCounter(upstream.host, undefined, /\/library\/bad\/(blobs|manifests\/sha256)/);
    h = await startHangar({ upstream: `http://${counter.host}`, tagTtlMs: TTL, prefetch: false });
  });
  after(async () => {
    await h?.close();
    await Promise.all([counter?.stop(), upstream?.stop()]);
    rmSync(tmp, { recursive: true, force: true });
  });

  test('the first GET of a blob streams it on; bytes that do not match their digest are never stored', async () => {
    const layout = join(tmp, 'layout-stream');
    const img = writeOciImage(layout, { tag: 's', layers: [{ tar: makeTar([{ name: 's', body: randomBytes(3_000_000) }]) }] });
    pushLayout(layout, 's', `${upstream.host}/library/streamed:1`);
    pushLayout(layout, 's', `${upstream.host}/library/bad:1`);
    const layer = img.layerDigests[0]!;
    const expected = readFileSync(join(layout, 'blobs', 'sha256', layer.slice(7)));
    // Prefetch is off in this suite, so this GET is the one that fetches (and streams).
    const first = await h.http('GET', `/v2/docker.io/library/streamed/blobs/${layer}`);
    assert.equal(first.status, 200);
    assert.equal(first.headers['docker-content-digest'], layer);
    assert.deepEqual(first.body, expected);
    assert.ok(h.daemon.registry.meta.repoBlob('docker.io/library/streamed', layer));
    const again = await h.http('GET', `/v2/docker.io/library/streamed/blobs/${layer}`, { range: 'bytes=0-9' });
    assert.equal(again.status, 206);
    assert.deepEqual(again.body, expected.subarray(0, 10));
    assert.equal(counter.count('GET', `/v2/library/streamed/blobs/${layer}`), 1);

    // A corrupted blob: the streamed response is cut (the client never gets a clean 200), nothing is stored.
    const bad = await h.http('GET', `/v2/docker.io/library/bad/blobs/${layer}`).catch((e: Error) => e);
    if (!(bad instanceof Error)) assert.notDeepEqual(bad.body, expected);
    assert.equal(h.daemon.registry.meta.repoBlob('docker.io/library/bad', layer), undefined);
    // A ranged GET waits for the fetch, so it gets a proper error body.
    const ranged = await h.http('GET', `/v2/docker.io/library/bad/blobs/${layer}`, { range: 'bytes=0-9' });
    assert.equal(ranged.status, 502);
    assert.match(ociError(ranged).message, /hash to sha256:/);
    // A manifest asked for by digest must hash to it.
    const m = await h.http('GET', `/v2/docker.io/library/bad/manifests/${img.manifestDigest}`);
    assert.equal(m.status, 502);
    assert.equal(ociError(m).code, 'UNAVAILABLE');
    assert.match(ociError(m).message, /whose digest is/);
    assert.equal(h.daemon.registry.meta.manifest('docker.io/library/bad', img.manifestDigest), undefined);
  });

  test('a HEAD of a blob pulls through only for blobs a stored manifest needs; X-Hangar-No-Upstream stays local', async () => {
    const layout = join(tmp, 'layout-head');
    const img = writeOciImage(layout, { tag: 'h', layers: [{ tar: makeTar([{ name: 'h', body: randomBytes(2000).toString('hex') }]) }] });
    pushLayout(layout, 'h', `${upstream.host}/library/headed:1`);
    // A pusher's existence checks (the mirror seed does these) never reach the upstream.
    const n = counter.requests.length;
    const local = await h.http('HEAD', '/v2/docker.io/library/headed/manifests/1', { 'x-hangar-no-upstream': '1' });
    assert.equal(local.status, 404);
    const unreferenced = await h.http('HEAD', `/v2/docker.io/library/headed/blobs/${img.layerDigests[0]}`);
    assert.equal(unreferenced.status, 404);
    assert.equal(counter.requests.length, n, counter.requests.slice(n).join('\n'));
    // Once the manifest is here (no prefetch in this suite), a HEAD of its layer fetches it.
    assert.equal((await h.http('GET', '/v2/docker.io/library/headed/manifests/1')).status, 200);
    const referenced = await h.http('HEAD', `/v2/docker.io/library/headed/blobs/${img.layerDigests[0]}`);
    assert.equal(referenced.status, 200);
    assert.equal(counter.count('GET', `/v2/library/headed/blobs/${img.layerDigests[0]}`), 1);
  });

  test('a tag re-resolves after the TTL; a pushed tag is never replaced; an outage serves the cache', async () => {
    const layout = join(tmp, 'layout');
    const one = writeOciImage(layout, { tag: 'one', layers: [{ tar: makeTar([{ name: 'v', body: 'one' }]) }] });
    const two = writeOciImage(layout, { tag: 'two', layers: [{ tar: makeTar([{ name: 'v', body: 'two' }]) }] });
    pushLayout(layout, 'one', `${upstream.host}/library/app:moving`);
    pushLayout(layout, 'two', `${upstream.host}/library/app:pinned`);

    const first = await h.http('GET', '/v2/docker.io/library/app/manifests/moving');
    assert.equal(first.headers['docker-content-digest'], one.manifestDigest);
    // Within the TTL: no upstream request at all.
    const n = counter.requests.length;
    assert.equal((await h.http('HEAD', '/v2/docker.io/library/app/manifests/moving')).headers['docker-content-digest'], one.manifestDigest);
    assert.equal(counter.requests.length, n);

    // Unchanged upstream after the TTL: one HEAD, no GET.
    await sleep(TTL + 50);
    assert.equal((await h.http('GET', '/v2/docker.io/library/app/manifests/moving')).headers['docker-content-digest'], one.manifestDigest);
    assert.equal(counter.count('HEAD', '/v2/library/app/manifests/moving'), 1);
    assert.equal(counter.count('GET', '/v2/library/app/manifests/moving'), 1);

    // The tag moves upstream: after the TTL the mirror follows.
    pushLayout(layout, 'two', `${upstream.host}/library/app:moving`);
    await sleep(TTL + 50);
    const moved = await h.http('GET', '/v2/docker.io/library/app/manifests/moving');
    assert.equal(moved.headers['docker-content-digest'], two.manifestDigest);
    assert.equal(counter.count('GET', '/v2/library/app/manifests/moving'), 2);
    // The old image stays reachable by digest (digests are never re-checked).
    const before = counter.requests.length;
    assert.equal((await h.http('GET', `/v2/docker.io/library/app/manifests/${one.manifestDigest}`)).status, 200);
    assert.equal(counter.requests.length, before);

    // A tag the admin pushed here (what `hangar images seed` does) wins over the upstream's.
    const r = await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', `hangar:${h.adminToken}`, `oci:${layout}:one`, `docker://${h.host}/docker.io/library/app:pinned`], {
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0);
    await sleep(TTL + 50);
    assert.equal((await h.http('GET', '/v2/docker.io/library/app/manifests/pinned')).headers['docker-content-digest'], one.manifestDigest);
    assert.equal(counter.count('GET', '/v2/library/app/manifests/pinned') + counter.count('HEAD', '/v2/library/app/manifests/pinned'), 0);

    // Upstream gone and the TTL over: the cached tag is still served.
    await counter.stop();
    await sleep(TTL + 50);
    const cached = await h.http('GET', '/v2/docker.io/library/app/manifests/moving');
    assert.equal(cached.status, 200);
    assert.equal(cached.headers['docker-content-digest'], two.manifestDigest);
  });
});

describe('upstream client: address policy (SSRF), timeouts', () => {
  test('private, loopback and link-local addresses are recognised', () => {
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fe80::1', 'fd00::1', '::ffff:10.0.0.1', '224.0.0.1']) {
      assert.equal(isPrivateAddress(a), true, a);
    }
    for (const a of ['8.8.8.8', '172.32.0.1', '100.128.0.1', '2a00:1450::1', '::ffff:1.1.1.1', '192.169.0.1']) assert.equal(isPrivateAddress(a), false, a);
  });

  test('without an explicit configuration, loopback names and addresses are refused before connecting', async () => {
    // `explicit: false` is what the built-in Docker Hub default gets.
    const byName = new UpstreamClient({ url: 'https://localhost:9', explicit: false, timeoutMs: 2000 });
    await assert.rejects(byName.fetch('library/x', '/manifests/1'), (e: UpstreamError) => e.kind === 'refused' && /resolves to/.test(e.message));
    const byIp = new UpstreamClient({ url: 'https://127.0.0.1:9', explicit: false, timeoutMs: 2000 });
    await assert.rejects(byIp.fetch('library/x', '/manifests/1'), (e: UpstreamError) => e.kind === 'refused' && /loopback/.test(e.message));
    const plain = new UpstreamClient({ url: 'http://127.0.0.1:9', explicit: false, timeoutMs: 2000 });
    await assert.rejects(plain.fetch('library/x', '/manifests/1'), (e: UpstreamError) => e.kind === 'refused');
    assert.throws(() => new UpstreamClient({ url: 'ftp://x', explicit: true, timeoutMs: 1 }), /http\(s\) URL/);
  });
  test('a silent upstream, or one that stalls mid-body, fails after the idle timeout', async () => {
    const sockets = new Set<import('node:net').Socket>();
    const server = createNetServer((sock) => {
      sockets.add(sock);
      sock.once('data', (d) => {
        // Manifests: headers and half a body, then nothing. Anything else: no answer at all.
        if (d.toString().includes('/manifests/')) sock.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"schema');
      });
    });
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    try {
      const c = new UpstreamClient({ url: `http://127.0.0.1:${port}`, explicit: true, timeoutMs: 300 });
      const t0 = Date.now();
      await assert.rejects(c.fetch('library/x', '/blobs/sha256:' + '1'.repeat(64)), (e: UpstreamError) => e.kind === 'unreachable' && /did not answer/.test(e.message));
      const res = await c.fetch('library/x', '/manifests/1');
      await assert.rejects(readAll(res, 1 << 20, 'manifest'), (e: UpstreamError) => e.kind === 'unreachable' && /went silent/.test(e.message));
      assert.ok(Date.now() - t0 < 5000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('builds through the mirror', () => {
  let upstream: TestRegistry;
  let counter: Counter;
  let h: Hangar;
  let tmp: string;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'hangar-pullthrough-build-'));
    // No cached Debian tarball: the builder must not seed the mirror here, only pull through.
    process.env.HANGAR_CACHE_DIR = join(tmp, 'cache');
    process.env.HANGAR_BUILD_STORAGE_DRIVER = 'vfs';
    upstream = await startUpstream();
    counter = await startCounter(upstream.host);
    h = await startHangar({ upstream: `http://${counter.host}` });
  });
  after(async () => {
    await h?.close();
    await Promise.all([counter?.stop(), upstream?.stop()]);
    delete process.env.HANGAR_CACHE_DIR;
    delete process.env.HANGAR_BUILD_STORAGE_DRIVER;
    rmSync(tmp, { recursive: true, force: true });
  });

  test('an unchanged `FROM bbox:v1` builds with buildah, the base pulled through from the upstream', { timeout: 300_000 }, async () => {
    const layout = join(tmp, 'layout');
    const base = writeBusyboxImage(layout, { tag: 'v1' });
    pushLayout(layout, 'v1', `${upstream.host}/library/bbox:v1`);
    assert.equal((await h.api('POST', '/v1/apps', { app_name: 'pt', org_slug: 'personal' })).status, 201);
    const ctx = join(tmp, 'ctx');
    mkdirSync(ctx);
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM bbox:v1\nCOPY hello.txt /hello.txt\n');
    writeFileSync(join(ctx, 'hello.txt'), 'hello\n');
    writeFileSync(join(ctx, 'hangar.toml'), 'app = "pt"\n');
    const r = await hangar(['deploy', '--build-only', '--push', '--image-label', 'v1'], {
      HANGAR_API_URL: h.daemon.url,
      HANGAR_ACCESS_TOKEN: h.adminToken,
      HANGAR_CONFIG_DIR: join(tmp, 'cli'),
      HANGAR_APP: undefined,
    }, undefined, ctx);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(counter.count('GET', '/v2/library/bbox/manifests/v1'), 1, counter.requests.join('\n'));
    const reg = h.daemon.registry;
    const built = JSON.parse(readFileSync(reg.blobPath(reg.resolveManifest('pt', 'v1')!.digest)!, 'utf8')) as { layers: Array<{ digest: string }> };
    assert.equal(built.layers.length, 2);
    // The base layer is busybox's (buildah may recompress it, so compare by content through the diff_ids).
    const cfg = JSON.parse(readFileSync(reg.blobPath((JSON.parse(readFileSync(reg.blobPath(reg.resolveManifest('pt', 'v1')!.digest)!, 'utf8')) as { config: { digest: string } }).config.digest)!, 'utf8')) as {
      rootfs: { diff_ids: string[] };
    };
    const baseCfg = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', base.configDigest.slice(7)), 'utf8')) as { rootfs: { diff_ids: string[] } };
    assert.equal(cfg.rootfs.diff_ids[0], baseCfg.rootfs.diff_ids[0]);
    assert.ok(reg.resolveManifest('docker.io/library/bbox', 'v1'), 'the base is now in the mirror');
  });
});

describe('`hangar daemon` wiring', () => {
  test('HANGAR_MIRROR_UPSTREAM points the CLI daemon at an upstream; `off` disables pull-through', { timeout: 120_000 }, async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'hangar-pullthrough-cli-'));
    const upstream = await startUpstream();
    const saved = process.env.HANGAR_MIRROR_UPSTREAM;
    let d: ChildDaemon | undefined;
    try {
      const layout = join(tmp, 'layout');
      const img = writeOciImage(layout, { tag: 'c', layers: [{ tar: makeTar([{ name: 'c', body: 'cli' }]) }] });
      pushLayout(layout, 'c', `${upstream.host}/library/cli:1`);
      const get = (path: string) => rawHttp(d!.url, 'GET', path, { authorization: `Bearer ${d!.adminToken}`, accept: MANIFEST_ACCEPT });

      process.env.HANGAR_MIRROR_UPSTREAM = 'off';
      d = await startChildDaemon(join(tmp, 'data-off'));
      assert.equal((await get('/v2/docker.io/library/cli/manifests/1')).status, 404);
      await d.stop();

      process.env.HANGAR_MIRROR_UPSTREAM = `http://${upstream.host}`;
      d = await startChildDaemon(join(tmp, 'data-on'));
      const r = await get('/v2/docker.io/library/cli/manifests/1');
      assert.equal(r.status, 200);
      assert.equal(r.headers['docker-content-digest'], img.manifestDigest);
    } finally {
      if (saved === undefined) delete process.env.HANGAR_MIRROR_UPSTREAM;
      else process.env.HANGAR_MIRROR_UPSTREAM = saved;
      await d?.stop();
      await upstream.stop();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
