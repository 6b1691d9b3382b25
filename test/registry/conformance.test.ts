import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { startRegistry, pushBlob, pushImage, sha256, sha512, storedBlobFiles, ociError, type RegistryFixture } from './helpers.js';

let r: RegistryFixture;
before(async () => {
  r = await startRegistry();
});
after(async () => {
  await r.close();
});

test('GET /v2/ answers 200 with the API version header when authenticated', async () => {
  const res = await r.http('GET', '/v2/');
  assert.equal(res.status, 200);
  assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
});

test('monolithic push (POST then PUT) then pull by tag and digest, GET and HEAD', async () => {
  const img = await pushImage(r, 'demo', 'v1', [randomBytes(3000), randomBytes(5000)]);
  for (const ref of ['v1', img.digest]) {
    const head = await r.http('HEAD', `/v2/demo/manifests/${ref}`);
    assert.equal(head.status, 200);
    assert.equal(head.headers['docker-content-digest'], img.digest);
    assert.equal(head.headers['content-type'], 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(Number(head.headers['content-length']), img.manifest.length);
    assert.equal(head.body.length, 0);
    const get = await r.http('GET', `/v2/demo/manifests/${ref}`);
    assert.equal(get.status, 200);
    assert.deepEqual(get.body, img.manifest);
  }
  for (const d of img.layers) {
    const get = await r.http('GET', `/v2/demo/blobs/${d}`);
    assert.equal(get.status, 200);
    assert.equal(sha256(get.body), d);
    assert.equal(get.headers['docker-content-digest'], d);
    const head = await r.http('HEAD', `/v2/demo/blobs/${d}`);
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers['content-length']), get.body.length);
  }
  const missing = await r.http('GET', `/v2/demo/manifests/nope`);
  assert.equal(missing.status, 404);
  assert.equal(ociError(missing).code, 'MANIFEST_UNKNOWN');
  const noBlob = await r.http('GET', `/v2/demo/blobs/${sha256('absent')}`);
  assert.equal(noBlob.status, 404);
  assert.equal(ociError(noBlob).code, 'BLOB_UNKNOWN');
});

test('blob Range requests answer 206 with Content-Range; unsatisfiable ranges 416', async () => {
  const data = randomBytes(10_000);
  const d = await pushBlob(r, 'demo', data);
  const part = await r.http('GET', `/v2/demo/blobs/${d}`, { headers: { range: 'bytes=100-199' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers['content-range'], `bytes 100-199/10000`);
  assert.deepEqual(part.body, data.subarray(100, 200));
  const tail = await r.http('GET', `/v2/demo/blobs/${d}`, { headers: { range: 'bytes=-10' } });
  assert.deepEqual(tail.body, data.subarray(9990));
  const open = await r.http('GET', `/v2/demo/blobs/${d}`, { headers: { range: 'bytes=9000-' } });
  assert.deepEqual(open.body, data.subarray(9000));
  const bad = await r.http('GET', `/v2/demo/blobs/${d}`, { headers: { range: 'bytes=20000-30000' } });
  assert.equal(bad.status, 416);
  assert.equal(bad.headers['content-range'], 'bytes */10000');
});

test('POST with ?digest= stores a blob in a single request; sha512 digests are accepted', async () => {
  const data = randomBytes(4096);
  const d = sha256(data);
  const res = await r.http('POST', `/v2/demo/blobs/uploads/?digest=${d}`, { body: data });
  assert.equal(res.status, 201);
  assert.equal(res.headers['docker-content-digest'], d);
  assert.equal(res.headers.location, `/v2/demo/blobs/${d}`);
  assert.deepEqual((await r.http('GET', `/v2/demo/blobs/${d}`)).body, data);

  const d512 = sha512(data);
  const res512 = await r.http('POST', `/v2/demo/blobs/uploads/?digest=${d512}`, { body: data });
  assert.equal(res512.status, 201);
  const got = await r.http('GET', `/v2/demo/blobs/${d512}`);
  assert.equal(got.status, 200);
  assert.equal(sha512(got.body), d512);
  // sha512 through a session too (the streaming hash is sha256; the file is re-hashed).
  const post = await r.http('POST', '/v2/demo/blobs/uploads/');
  const data2 = randomBytes(777);
  const put = await r.http('PUT', `${post.headers.location}?digest=${sha512(data2)}`, { body: data2 });
  assert.equal(put.status, 201);
});

test('chunked upload: PATCH with Content-Range, status GET gives 204 + Range, PUT closes; cancel with DELETE', async () => {
  const data = randomBytes(300_000);
  const post = await r.http('POST', '/v2/demo/blobs/uploads/');
  assert.equal(post.status, 202);
  assert.equal(post.headers.range, '0-0');
  assert.ok(post.headers['docker-upload-uuid']);
  let loc = String(post.headers.location);
  const chunks = [data.subarray(0, 100_000), data.subarray(100_000, 250_000), data.subarray(250_000)];
  let offset = 0;
  for (const c of chunks.slice(0, 2)) {
    const res = await r.http('PATCH', loc, {
      body: c,
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + c.length - 1}` },
    });
    assert.equal(res.status, 202);
    offset += c.length;
    assert.equal(res.headers.range, `0-${offset - 1}`);
    loc = String(res.headers.location);
  }
  const status = await r.http('GET', loc);
  assert.equal(status.status, 204);
  assert.equal(status.headers.range, `0-${offset - 1}`);
  const d = sha256(data);
  const put = await r.http('PUT', `${loc}?digest=${d}`, { body: chunks[2], headers: { 'content-range': `${offset}-${data.length - 1}` } });
  assert.equal(put.status, 201);
  assert.deepEqual((await r.http('GET', `/v2/demo/blobs/${d}`)).body, data);
  assert.equal((await r.http('GET', loc)).status, 404, 'a finished session is gone');

  // Streamed PATCH without Content-Range (what skopeo does), then cancel.
  const post2 = await r.http('POST', '/v2/demo/blobs/uploads/');
  const loc2 = String(post2.headers.location);
  assert.equal((await r.http('PATCH', loc2, { body: randomBytes(1000) })).status, 202);
  const del = await r.http('DELETE', loc2);
  assert.equal(del.status, 204);
  const gone = await r.http('GET', loc2);
  assert.equal(gone.status, 404);
  assert.equal(ociError(gone).code, 'BLOB_UPLOAD_UNKNOWN');
});

test('cross-repository mount: 201 when the caller can read the source, otherwise a normal 202 session', async () => {
  const data = randomBytes(2048);
  const d = await pushBlob(r, 'demo', data);
  const res = await r.http('POST', `/v2/other/blobs/uploads/?mount=${d}&from=demo`);
  assert.equal(res.status, 201);
  assert.equal(res.headers['docker-content-digest'], d);
  assert.deepEqual((await r.http('GET', `/v2/other/blobs/${d}`)).body, data);

  // The rival org may not read demo: its mount falls back to an upload session and reveals nothing.
  const rival = await r.http('POST', `/v2/rivalapp/blobs/uploads/?mount=${d}&from=demo`, { token: r.rivalToken });
  assert.equal(rival.status, 202);
  assert.match(String(rival.headers.location), /^\/v2\/rivalapp\/blobs\/uploads\//);
  assert.equal((await r.http('HEAD', `/v2/rivalapp/blobs/${d}`, { token: r.rivalToken })).status, 404);
  // Mounting a digest the source does not have is a normal session too.
  const none = await r.http('POST', `/v2/other/blobs/uploads/?mount=${sha256('nothing')}&from=demo`);
  assert.equal(none.status, 202);
});

test('one copy per digest: the same blob in two repositories is one file', async () => {
  const data = randomBytes(12_345);
  const before = storedBlobFiles(r.dataDir).length;
  await pushBlob(r, 'demo/a', data);
  await pushBlob(r, 'other/b', data);
  await pushBlob(r, 'demo/a', data);
  assert.equal(storedBlobFiles(r.dataDir).length, before + 1);
  const file = storedBlobFiles(r.dataDir).find((f) => f.endsWith(sha256(data).slice(7)))!;
  assert.deepEqual(readFileSync(file), data);
});

test('tags list with n/last pagination and Link header', async () => {
  const base = await pushImage(r, 'demo/paged', 'a');
  for (const t of ['b', 'c', 'd', 'e']) {
    const put = await r.http('PUT', `/v2/demo/paged/manifests/${t}`, { body: base.manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(put.status, 201);
  }
  const all = await r.http('GET', '/v2/demo/paged/tags/list');
  assert.deepEqual(all.json(), { name: 'demo/paged', tags: ['a', 'b', 'c', 'd', 'e'] });
  const p1 = await r.http('GET', '/v2/demo/paged/tags/list?n=2');
  assert.deepEqual(p1.json().tags, ['a', 'b']);
  assert.equal(p1.headers.link, '</v2/demo/paged/tags/list?n=2&last=b>; rel="next"');
  const p2 = await r.http('GET', '/v2/demo/paged/tags/list?n=2&last=b');
  assert.deepEqual(p2.json().tags, ['c', 'd']);
  const p3 = await r.http('GET', '/v2/demo/paged/tags/list?n=2&last=d');
  assert.deepEqual(p3.json().tags, ['e']);
  assert.equal(p3.headers.link, undefined);
});

test('catalog lists only the caller org repositories; admin sees all; pagination works', async () => {
  await pushImage(r, 'demo/cat', 'v1');
  await pushImage(r, 'rivalapp', 'v1', undefined).catch(() => undefined);
  const rivalPush = await pushImageAs(r, 'rivalapp/secret', r.rivalToken);
  assert.ok(rivalPush);
  const mine = (await r.http('GET', '/v2/_catalog')).json().repositories as string[];
  assert.ok(mine.includes('demo/cat'));
  assert.ok(!mine.some((n) => n.startsWith('rivalapp')), 'another org repositories are invisible');
  const theirs = (await r.http('GET', '/v2/_catalog', { token: r.rivalToken })).json().repositories as string[];
  assert.deepEqual(theirs, ['rivalapp/secret']);
  const admin = (await r.http('GET', '/v2/_catalog', { token: r.adminToken })).json().repositories as string[];
  assert.ok(admin.includes('rivalapp/secret') && admin.includes('demo/cat'));
  const page = await r.http('GET', '/v2/_catalog?n=1', { token: r.adminToken });
  assert.equal(page.json().repositories.length, 1);
  assert.match(String(page.headers.link), /^<\/v2\/_catalog\?n=1&last=.+>; rel="next"$/);
});

async function pushImageAs(r: RegistryFixture, repo: string, token: string) {
  const cfg = Buffer.from('{}');
  const c = sha256(cfg);
  assert.equal((await r.http('POST', `/v2/${repo}/blobs/uploads/?digest=${c}`, { body: cfg, token })).status, 201);
  const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: c, size: 2 }, layers: [] }));
  const res = await r.http('PUT', `/v2/${repo}/manifests/latest`, { body: m, token, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(res.status, 201);
  return true;
}

test('delete a tag, then the manifest by digest', async () => {
  const img = await pushImage(r, 'demo/del', 'one');
  assert.equal((await r.http('PUT', `/v2/demo/del/manifests/two`, { body: img.manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })).status, 201);
  assert.equal((await r.http('DELETE', '/v2/demo/del/manifests/one')).status, 202);
  assert.equal((await r.http('GET', '/v2/demo/del/manifests/one')).status, 404);
  assert.equal((await r.http('GET', '/v2/demo/del/manifests/two')).status, 200);
  assert.equal((await r.http('DELETE', `/v2/demo/del/manifests/${img.digest}`)).status, 202);
  assert.equal((await r.http('GET', '/v2/demo/del/manifests/two')).status, 404, 'tags of a deleted manifest go with it');
  assert.equal((await r.http('GET', `/v2/demo/del/manifests/${img.digest}`)).status, 404);
  const again = await r.http('DELETE', `/v2/demo/del/manifests/${img.digest}`);
  assert.equal(again.status, 404);
  assert.equal(ociError(again).code, 'MANIFEST_UNKNOWN');
});

test('Docker schema 2 manifest and manifest list; OCI index whose children must exist', async () => {
  const cfg = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const c = await pushBlob(r, 'demo/docker', cfg);
  const l = await pushBlob(r, 'demo/docker', randomBytes(100));
  const dm = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: c, size: cfg.length },
    layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: l, size: 100 }],
  }));
  assert.equal((await r.http('PUT', '/v2/demo/docker/manifests/amd64', { body: dm, headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' } })).status, 201);
  const list = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
    manifests: [{ mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest: sha256(dm), size: dm.length, platform: { architecture: 'amd64', os: 'linux' } }],
  }));
  const put = await r.http('PUT', '/v2/demo/docker/manifests/latest', { body: list, headers: { 'content-type': 'application/vnd.docker.distribution.manifest.list.v2+json' } });
  assert.equal(put.status, 201);
  const get = await r.http('GET', '/v2/demo/docker/manifests/latest');
  assert.equal(get.headers['content-type'], 'application/vnd.docker.distribution.manifest.list.v2+json');
  assert.equal(get.headers['docker-content-digest'], sha256(list));

  const orphanIndex = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256('not pushed'), size: 10 }],
  }));
  const bad = await r.http('PUT', '/v2/demo/docker/manifests/broken', { body: orphanIndex, headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' } });
  assert.equal(bad.status, 404);
  assert.equal(ociError(bad).code, 'MANIFEST_UNKNOWN');
  assert.equal((await r.http('GET', '/v2/demo/docker/manifests/broken')).status, 404);
});

test('referrers API: artifacts with subject, OCI-Subject header, artifactType filter', async () => {
  const img = await pushImage(r, 'demo/ref', 'v1');
  const empty = Buffer.from('{}');
  const e = await pushBlob(r, 'demo/ref', empty);
  const sig = await pushBlob(r, 'demo/ref', Buffer.from('signature'));
  const mk = (artifactType: string, note: string) =>
    Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: e, size: 2 },
      layers: [{ mediaType: 'application/octet-stream', digest: sig, size: 9 }],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.digest, size: img.manifest.length },
      annotations: { note },
    }));
  const a1 = mk('application/vnd.example.sig', 'one');
  const a2 = mk('application/vnd.example.sbom', 'two');
  for (const a of [a1, a2]) {
    const put = await r.http('PUT', `/v2/demo/ref/manifests/${sha256(a)}`, { body: a, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(put.status, 201);
    assert.equal(put.headers['oci-subject'], img.digest);
  }
  const all = await r.http('GET', `/v2/demo/ref/referrers/${img.digest}`);
  assert.equal(all.status, 200);
  assert.equal(all.headers['content-type'], 'application/vnd.oci.image.index.v1+json');
  const idx = all.json();
  assert.equal(idx.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(new Set(idx.manifests.map((m: { digest: string }) => m.digest)), new Set([sha256(a1), sha256(a2)]));
  const one = idx.manifests.find((m: { digest: string }) => m.digest === sha256(a1));
  assert.equal(one.artifactType, 'application/vnd.example.sig');
  assert.deepEqual(one.annotations, { note: 'one' });
  const filtered = await r.http('GET', `/v2/demo/ref/referrers/${img.digest}?artifactType=application/vnd.example.sbom`);
  assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
  assert.deepEqual(filtered.json().manifests.map((m: { digest: string }) => m.digest), [sha256(a2)]);
  const none = await r.http('GET', `/v2/demo/ref/referrers/${sha256('nothing refers to me')}`);
  assert.equal(none.status, 200);
  assert.deepEqual(none.json().manifests, []);
});

test('blob delete unlinks it from the repository', async () => {
  const d = await pushBlob(r, 'demo/bdel', randomBytes(50));
  assert.equal((await r.http('DELETE', `/v2/demo/bdel/blobs/${d}`)).status, 202);
  assert.equal((await r.http('HEAD', `/v2/demo/bdel/blobs/${d}`)).status, 404);
});

test('LocalImageStore: resolveManifest and blobPath read the store directly', async () => {
  const img = await pushImage(r, 'demo/local', 'v1', [randomBytes(64)]);
  const reg = r.daemon.registry;
  assert.deepEqual(reg.resolveManifest('demo/local', 'v1'), { digest: img.digest, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
  assert.deepEqual(reg.resolveManifest('demo/local', img.digest)?.digest, img.digest);
  assert.equal(reg.resolveManifest('demo/local', 'nope'), undefined);
  assert.equal(reg.resolveManifest('../x', 'v1'), undefined);
  const p = reg.blobPath(img.layers[0]!);
  assert.ok(p);
  assert.equal(sha256(readFileSync(p)), img.layers[0]);
  assert.deepEqual(readFileSync(reg.blobPath(img.digest)!), img.manifest);
  assert.equal(reg.blobPath(sha256('absent')), undefined);
});

test('LocalImageWriter: in-process blobs and manifests follow the push rules and are served over HTTP', async () => {
  const reg = r.daemon.registry;
  const app = r.daemon.accounts.findApp('demo')!;
  const write = async (repo: string, bytes: Buffer) => {
    const tmp = reg.blobTempPath();
    writeFileSync(tmp, bytes);
    await reg.addBlob(repo, app, tmp, sha256(bytes), bytes.length);
    assert.equal(existsSync(tmp), false, 'the temp file was moved into the store');
    return sha256(bytes);
  };
  const layer = randomBytes(300);
  const cfg = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const l = await write('demo/inproc', layer);
  const c = await write('demo/inproc', cfg);
  const manifest = (layers: string[]) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: c, size: cfg.length }, layers: layers.map((d) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d, size: 300 })) }));
  const m = manifest([l]);
  assert.equal(await reg.putManifest('demo/inproc', app, 'v1', m, 'application/vnd.oci.image.manifest.v1+json'), sha256(m));
  const got = await r.http('GET', '/v2/demo/inproc/manifests/v1');
  assert.equal(got.status, 200);
  assert.deepEqual(got.body, m);
  assert.deepEqual((await r.http('GET', `/v2/demo/inproc/blobs/${l}`)).body, layer);

  // Linking: only what the store holds; then the other repository serves it.
  assert.equal(await reg.linkBlob('demo/linked', app, sha256('not in the store')), false);
  assert.equal((await r.http('HEAD', `/v2/demo/linked/blobs/${l}`)).status, 404);
  assert.equal(await reg.linkBlob('demo/linked', app, l), true);
  assert.equal((await r.http('HEAD', `/v2/demo/linked/blobs/${l}`)).status, 200);

  // A manifest over a blob its repository does not have: refused, no tag written.
  const stray = sha256(randomBytes(10));
  await assert.rejects(reg.putManifest('demo/inproc', app, 'v2', manifest([l, stray]), 'application/vnd.oci.image.manifest.v1+json'), (e: Error & { code?: string }) => e.code === 'MANIFEST_BLOB_UNKNOWN' && e.message.includes(stray));
  assert.equal((await r.http('GET', '/v2/demo/inproc/manifests/v2')).status, 404);
  assert.equal(reg.resolveManifest('demo/inproc', 'v1')?.digest, sha256(m), 'v1 untouched');
});

test('manifests PUT and fetched by a sha512 digest; unsupported methods are 405', async () => {
  const cfg = Buffer.from('{"os":"linux"}');
  const c = await pushBlob(r, 'demo/s512', cfg);
  const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: c, size: cfg.length }, layers: [] }));
  const d = sha512(m);
  const put = await r.http('PUT', `/v2/demo/s512/manifests/${d}`, { body: m, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(put.status, 201);
  assert.equal(put.headers['docker-content-digest'], d);
  const get = await r.http('GET', `/v2/demo/s512/manifests/${d}`);
  assert.equal(get.status, 200);
  assert.deepEqual(get.body, m);
  assert.equal(get.headers['docker-content-digest'], d);
  const patch = await r.http('PATCH', `/v2/demo/s512/manifests/${d}`, { body: 'x' });
  assert.equal(patch.status, 405);
  assert.ok(Array.isArray(patch.json().errors));
});
