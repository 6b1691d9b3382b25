import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startRegistry, pushBlob, pushImage, sha256, storedBlobFiles, uploadFiles, ociError, type RegistryFixture } from './helpers.js';

let r: RegistryFixture;
before(async () => {
  r = await startRegistry();
});
after(async () => {
  await r.close();
});

const OCI_MANIFEST = { 'content-type': 'application/vnd.oci.image.manifest.v1+json' };

test('wrong digest on PUT: DIGEST_INVALID, nothing stored, session discarded', async () => {
  const before = storedBlobFiles(r.dataDir);
  const data = randomBytes(1000);
  const post = await r.http('POST', '/v2/demo/blobs/uploads/');
  const wrong = sha256('something else');
  const put = await r.http('PUT', `${post.headers.location}?digest=${wrong}`, { body: data });
  assert.equal(put.status, 400);
  assert.equal(ociError(put).code, 'DIGEST_INVALID');
  assert.deepEqual(storedBlobFiles(r.dataDir), before);
  assert.equal((await r.http('HEAD', `/v2/demo/blobs/${wrong}`)).status, 404);
  assert.equal((await r.http('HEAD', `/v2/demo/blobs/${sha256(data)}`)).status, 404);
  assert.equal((await r.http('GET', String(post.headers.location))).status, 404);

  // Single-request POST with a wrong digest: same answer, no temp file left behind.
  const p2 = await r.http('POST', `/v2/demo/blobs/uploads/?digest=${wrong}`, { body: data });
  assert.equal(p2.status, 400);
  assert.equal(ociError(p2).code, 'DIGEST_INVALID');
  assert.ok(!uploadFiles(r.dataDir).some((f) => f.endsWith('.tmp')));
  assert.deepEqual(storedBlobFiles(r.dataDir), before);
});

test('malformed and unsupported digests: DIGEST_INVALID', async () => {
  for (const d of ['sha256:xyz', 'md5:0123456789abcdef0123456789abcdef', 'sha256:' + 'A'.repeat(64), 'nonsense']) {
    const res = await r.http('POST', `/v2/demo/blobs/uploads/?digest=${encodeURIComponent(d)}`, { body: 'x' });
    assert.equal(res.status, 400, d);
    assert.equal(ociError(res).code, 'DIGEST_INVALID', d);
  }
  const unsupported = await r.http('HEAD', `/v2/demo/blobs/md5:0123456789abcdef0123456789abcdef`);
  assert.equal(unsupported.status, 400);
  assert.equal(ociError(await r.http('GET', `/v2/demo/blobs/md5:0123456789abcdef0123456789abcdef`)).message.includes('unsupported'), true);
});

function sendTruncated(path: string, headers: Record<string, string>, declared: number, sent: Buffer): Promise<void> {
  const u = new URL(r.url);
  return new Promise((resolve) => {
    const s = connect(Number(u.port), u.hostname, () => {
      const head = [`PUT ${path} HTTP/1.1`, `Host: ${r.host}`, `Content-Length: ${declared}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n');
      s.write(head);
      s.write(sent, () => setTimeout(() => s.destroy(), 100));
    });
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
}

test('truncated upload: the connection drops mid-body, nothing is stored and the session rolls back', async () => {
  const before = storedBlobFiles(r.dataDir);
  const data = randomBytes(200_000);
  const post = await r.http('POST', '/v2/demo/blobs/uploads/');
  const loc = String(post.headers.location);
  const first = data.subarray(0, 50_000);
  assert.equal((await r.http('PATCH', loc, { body: first, headers: { 'content-range': `0-49999` } })).status, 202);
  await sendTruncated(`${loc}?digest=${sha256(data)}`, { authorization: r.basic() }, 150_000, data.subarray(50_000, 120_000));
  await new Promise((res) => setTimeout(res, 100));
  assert.deepEqual(storedBlobFiles(r.dataDir), before);
  assert.equal((await r.http('HEAD', `/v2/demo/blobs/${sha256(data)}`)).status, 404);
  const status = await r.http('GET', loc);
  assert.equal(status.status, 204);
  assert.equal(status.headers.range, '0-49999', 'the partial body was rolled back');
  assert.equal(statSync(join(r.dataDir, 'registry', 'uploads', loc.split('/').pop()!)).size, 50_000);
  // Resuming from the offset the server reports completes the blob.
  const put = await r.http('PUT', `${loc}?digest=${sha256(data)}`, { body: data.subarray(50_000), headers: { 'content-range': `50000-199999` } });
  assert.equal(put.status, 201);

  // A truncated single-request POST leaves no temp file and no blob.
  const other = randomBytes(100_000);
  const u = new URL(r.url);
  await new Promise<void>((resolve) => {
    const s = connect(Number(u.port), u.hostname, () => {
      s.write(`POST /v2/demo/blobs/uploads/?digest=${sha256(other)} HTTP/1.1\r\nHost: ${r.host}\r\nAuthorization: ${r.basic()}\r\nContent-Length: 100000\r\n\r\n`);
      s.write(other.subarray(0, 30_000), () => setTimeout(() => s.destroy(), 100));
    });
    s.on('close', () => resolve());
  });
  await new Promise((res) => setTimeout(res, 100));
  assert.equal((await r.http('HEAD', `/v2/demo/blobs/${sha256(other)}`)).status, 404);
  assert.ok(!uploadFiles(r.dataDir).some((f) => f.endsWith('.tmp')));
});

test('out-of-order chunk: 416 with the Range the server has, nothing written', async () => {
  const post = await r.http('POST', '/v2/demo/blobs/uploads/');
  const loc = String(post.headers.location);
  assert.equal((await r.http('PATCH', loc, { body: randomBytes(100), headers: { 'content-range': '0-99' } })).status, 202);
  const res = await r.http('PATCH', loc, { body: randomBytes(100), headers: { 'content-range': '200-299' } });
  assert.equal(res.status, 416);
  assert.equal(res.headers.range, '0-99');
  assert.equal(ociError(res).code, 'BLOB_UPLOAD_INVALID');
  assert.equal((await r.http('GET', loc)).headers.range, '0-99');
  // Content-Range that disagrees with the body length is refused and rolled back too.
  const lying = await r.http('PATCH', loc, { body: randomBytes(10), headers: { 'content-range': '100-199' } });
  assert.equal(lying.status, 416);
  assert.equal((await r.http('GET', loc)).headers.range, '0-99');
});

test('manifest naming a missing blob: MANIFEST_BLOB_UNKNOWN, manifest not stored', async () => {
  const cfg = await pushBlob(r, 'demo', Buffer.from('{}'));
  const missing = sha256('never pushed');
  const m = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfg, size: 2 },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: missing, size: 12 }],
  }));
  const before = storedBlobFiles(r.dataDir);
  const res = await r.http('PUT', '/v2/demo/manifests/broken', { body: m, headers: OCI_MANIFEST });
  assert.equal(res.status, 400);
  const err = res.json().errors[0];
  assert.equal(err.code, 'MANIFEST_BLOB_UNKNOWN');
  assert.equal(err.detail.digest, missing);
  assert.equal((await r.http('GET', '/v2/demo/manifests/broken')).status, 404);
  assert.equal((await r.http('GET', `/v2/demo/manifests/${sha256(m)}`)).status, 404);
  assert.deepEqual(storedBlobFiles(r.dataDir), before);
  // A blob of another repository does not count either.
  const elsewhere = await pushBlob(r, 'other', Buffer.from('layer elsewhere'));
  const m2 = Buffer.from(m.toString().replace(missing, elsewhere));
  assert.equal(ociError(await r.http('PUT', '/v2/demo/manifests/broken', { body: m2, headers: OCI_MANIFEST })).code, 'MANIFEST_BLOB_UNKNOWN');
});

test('invalid manifests: bad JSON, unknown media type, wrong digest reference → MANIFEST_INVALID / DIGEST_INVALID', async () => {
  const bad = await r.http('PUT', '/v2/demo/manifests/x', { body: '{not json', headers: OCI_MANIFEST });
  assert.equal(ociError(bad).code, 'MANIFEST_INVALID');
  const v1 = await r.http('PUT', '/v2/demo/manifests/x', {
    body: JSON.stringify({ schemaVersion: 1, mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws' }),
    headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' },
  });
  assert.equal(ociError(v1).code, 'MANIFEST_INVALID');
  const body = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] });
  const wrong = await r.http('PUT', `/v2/demo/manifests/${sha256('different')}`, { body, headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' } });
  assert.equal(ociError(wrong).code, 'DIGEST_INVALID');
  const badTag = await r.http('PUT', `/v2/demo/manifests/-bad`, { body, headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' } });
  assert.equal(badTag.status, 400);
  assert.equal((await r.http('GET', '/v2/demo/tags/list')).json().tags.includes('x'), false);
});

test('invalid names and `..`: NAME_INVALID; unknown app: denied for an org token, NAME_UNKNOWN for admin', async () => {
  for (const path of ['/v2/demo/../other/manifests/latest', '/v2/Demo/manifests/latest', '/v2/demo/..x/tags/list', '/v2/demo//x/blobs/uploads/', '/v2/-demo/tags/list', '/v2/demo/a..b/manifests/v1']) {
    const res = await r.http(path.includes('uploads') ? 'POST' : 'GET', path);
    assert.equal(res.status, 400, path);
    assert.equal(ociError(res).code, 'NAME_INVALID', path);
  }
  const unknown = await r.http('GET', '/v2/ghost/tags/list');
  assert.equal(unknown.status, 403);
  assert.equal(ociError(unknown).code, 'DENIED');
  const admin = await r.http('GET', '/v2/ghost/tags/list', { token: r.adminToken });
  assert.equal(admin.status, 404);
  assert.equal(ociError(admin).code, 'NAME_UNKNOWN');
  assert.ok(!storedBlobFiles(r.dataDir).some((f) => f.includes('..')));
});

test('manifest over 4 MiB: 413 MANIFEST_INVALID, not stored', async () => {
  const cfg = await pushBlob(r, 'demo', Buffer.from('{}'));
  const pad = 'x'.repeat(4 * 1024 * 1024);
  const m = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfg, size: 2 },
    layers: [],
    annotations: { pad },
  }));
  const before = storedBlobFiles(r.dataDir);
  const res = await r.http('PUT', '/v2/demo/manifests/huge', { body: m, headers: OCI_MANIFEST });
  assert.equal(res.status, 413);
  assert.equal(ociError(res).code, 'MANIFEST_INVALID');
  assert.equal((await r.http('GET', '/v2/demo/manifests/huge')).status, 404);
  assert.deepEqual(storedBlobFiles(r.dataDir), before);
  // Chunked (no Content-Length) is cut off at the limit too.
  const chunked = await r.http('PUT', '/v2/demo/manifests/huge', { body: m, headers: { ...OCI_MANIFEST, 'transfer-encoding': 'chunked' } });
  assert.equal(chunked.status, 413);
});

test('unknown errors are a bare 500 with no body (internals stay in the daemon log)', async () => {
  const img = await pushImage(r, 'demo/broken', 'v1');
  // Break the store behind the registry's back: the manifest row now points at no file.
  rmSync(r.daemon.registry.blobPath(img.digest)!);
  const res = await r.http('GET', '/v2/demo/broken/manifests/v1');
  assert.equal(res.status, 500);
  assert.equal(res.body.length, 0);
  const unknownEndpoint = await r.http('GET', '/v2/demo/whatever');
  assert.equal(unknownEndpoint.status, 404);
  assert.ok(Array.isArray(unknownEndpoint.json().errors));
});
