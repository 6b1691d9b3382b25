import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/shared/process.js';
import { startRegistry, pushBlob, pushImage, sha256, storedBlobFiles, uploadFiles, type RegistryFixture } from './helpers.js';

const HANGAR = fileURLToPath(new URL('../../../bin/hangar', import.meta.url));

async function pullOk(r: RegistryFixture, repo: string, tag: string): Promise<void> {
  const m = await r.http('GET', `/v2/${repo}/manifests/${tag}`);
  assert.equal(m.status, 200, `${repo}:${tag}`);
  const manifest = m.json();
  for (const d of [manifest.config.digest, ...manifest.layers.map((l: { digest: string }) => l.digest)]) {
    const b = await r.http('GET', `/v2/${repo}/blobs/${d}`);
    assert.equal(b.status, 200);
    assert.equal(sha256(b.body), d);
  }
}

test('gc removes blobs no manifest references, keeps shared and referenced ones', async () => {
  const r = await startRegistry();
  try {
    const shared = randomBytes(1000);
    const keep = await pushImage(r, 'demo', 'keep', [shared, randomBytes(2000)]);
    const drop = await pushImage(r, 'demo/old', 'gone', [shared, randomBytes(3000)]);
    const orphan = await pushBlob(r, 'demo', randomBytes(500));
    assert.equal((await r.http('DELETE', `/v2/demo/old/manifests/${drop.digest}`)).status, 202);

    // Within the grace period nothing goes: a push may be about to reference these.
    const early = await r.daemon.registry.gc();
    assert.equal(early.blobs_deleted, 0);

    const dry = await r.daemon.registry.gc({ graceMs: 0, dryRun: true });
    const expected = new Set([drop.digest, drop.layers[1], orphan]);
    assert.deepEqual(new Set(dry.digests), expected);
    assert.ok(existsSync(r.daemon.registry.content.blobPath({ algorithm: 'sha256', hex: orphan.slice(7) })));

    const res = await r.daemon.registry.gc({ graceMs: 0 });
    assert.deepEqual(new Set(res.digests), expected);
    for (const d of expected) {
      assert.equal(r.daemon.registry.blobPath(d), undefined);
      assert.ok(!existsSync(r.daemon.registry.content.blobPath({ algorithm: 'sha256', hex: d.slice(7) })));
    }
    await pullOk(r, 'demo', 'keep');
    assert.equal((await r.http('HEAD', `/v2/demo/blobs/${orphan}`)).status, 404);
    // What remains on disk is exactly the kept image.
    assert.equal(storedBlobFiles(r.dataDir).length, 4);
    assert.equal((await r.daemon.registry.gc({ graceMs: 0 })).blobs_deleted, 0);
    assert.ok(keep);
  } finally {
    await r.close();
  }
});

test('gc follows indexes to their child manifests and layers', async () => {
  const r = await startRegistry();
  try {
    const child = await pushImage(r, 'demo', 'child', [randomBytes(100)]);
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: child.digest, size: child.manifest.length, platform: { os: 'linux', architecture: 'amd64' } }],
    }));
    assert.equal((await r.http('PUT', '/v2/demo/manifests/multi', { body: index, headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' } })).status, 201);
    // Untag the child: only the index holds it now.
    assert.equal((await r.http('DELETE', '/v2/demo/manifests/child')).status, 202);
    assert.equal((await r.daemon.registry.gc({ graceMs: 0 })).blobs_deleted, 0);
    await pullOk(r, 'demo', child.digest);
  } finally {
    await r.close();
  }
});

test('gc while pushes are in flight: every push completes and stays intact', async () => {
  const r = await startRegistry();
  try {
    const pushes = Array.from({ length: 8 }, (_, i) => pushImage(r, 'demo', `t${i}`, [randomBytes(200_000), randomBytes(50_000)]));
    const gcs = Array.from({ length: 4 }, async () => {
      await new Promise((res) => setTimeout(res, Math.random() * 50));
      return r.daemon.registry.gc();
    });
    await Promise.all([...pushes, ...gcs]);
    for (let i = 0; i < 8; i++) await pullOk(r, 'demo', `t${i}`);
    // And an explicit interleaving: blob committed, gc runs, then the manifest arrives.
    const cfg = await pushBlob(r, 'demo', Buffer.from('{"os":"linux"}'));
    await r.daemon.registry.gc();
    const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfg, size: 14 }, layers: [] }));
    assert.equal((await r.http('PUT', '/v2/demo/manifests/late', { body: m, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })).status, 201);
    // An open upload session is untouched by gc.
    const post = await r.http('POST', '/v2/demo/blobs/uploads/');
    await r.http('PATCH', String(post.headers.location), { body: randomBytes(1000) });
    await r.daemon.registry.gc({ graceMs: 0 });
    assert.equal((await r.http('GET', String(post.headers.location))).headers.range, '0-999');
  } finally {
    await r.close();
  }
});

test("repositories of a destroyed app are dropped, and a new app of the same name does not inherit them", async () => {
  const r = await startRegistry();
  try {
    const img = await pushImage(r, 'other', 'v1');
    const app = r.daemon.accounts.findApp('other')!;
    r.daemon.accounts.deleteApp(app.id);
    const rivalOrg = r.daemon.accounts.findOrg('rival')!;
    r.daemon.accounts.createApp('other', rivalOrg.id);
    const res = await r.http('GET', `/v2/other/manifests/${img.digest}`, { token: r.rivalToken });
    assert.equal(res.status, 404, 'the new owner sees an empty repository');
    const gc = await r.daemon.registry.gc({ graceMs: 0 });
    assert.ok(gc.digests.includes(img.digest));
  } finally {
    await r.close();
  }
});

test('`hangar registry gc`, `hangar registry list` and `hangar auth docker` through the CLI; gc needs the admin token', async () => {
  const r = await startRegistry();
  try {
    await pushImage(r, 'demo', 'v1');
    await pushBlob(r, 'demo', randomBytes(64));
    const env = { ...process.env, HANGAR_API_URL: r.url, HANGAR_ACCESS_TOKEN: r.adminToken, HOME: r.dataDir };
    const dry = await run(process.execPath, [HANGAR, 'registry', 'gc', '--dry-run', '--grace', '0', '--json'], { env });
    assert.equal(JSON.parse(dry.stdout).blobs_deleted, 1);
    assert.equal(JSON.parse(dry.stdout).dry_run, true);
    const real = await run(process.execPath, [HANGAR, 'registry', 'gc', '--grace', '0'], { env });
    assert.match(real.stdout, /Deleted 1 blobs/);
    const denied = await run(process.execPath, [HANGAR, 'registry', 'gc'], { env: { ...env, HANGAR_ACCESS_TOKEN: r.token }, allowFailure: true });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /admin/);
    const list = await run(process.execPath, [HANGAR, 'registry', 'list', '--json'], { env: { ...env, HANGAR_ACCESS_TOKEN: r.token } });
    assert.deepEqual(JSON.parse(list.stdout).map((x: { name: string }) => x.name), ['demo']);
    // `hangar auth docker` writes the docker config for the daemon's host:port with the CLI's token.
    const dockerEnv = { ...env, HANGAR_ACCESS_TOKEN: r.token, DOCKER_CONFIG: join(r.dataDir, 'dockercfg') };
    const auth = await run(process.execPath, [HANGAR, 'auth', 'docker', '--json'], { env: dockerEnv });
    const written = JSON.parse(auth.stdout);
    assert.equal(written.registry, r.host);
    const cfg = JSON.parse(readFileSync(join(r.dataDir, 'dockercfg', 'config.json'), 'utf8'));
    assert.equal(Buffer.from(cfg.auths[r.host].auth, 'base64').toString(), `hangar:${r.token}`);
    const bad = await run(process.execPath, [HANGAR, 'auth', 'docker'], { env: { ...dockerEnv, HANGAR_ACCESS_TOKEN: 'hgr_nope' }, allowFailure: true });
    assert.notEqual(bad.code, 0);
  } finally {
    await r.close();
  }
});

test('upload sessions expire: the sweep removes idle sessions and stray session files', async () => {
  const r = await startRegistry();
  try {
    const post = await r.http('POST', '/v2/demo/blobs/uploads/');
    await r.http('PATCH', String(post.headers.location), { body: randomBytes(100) });
    const fresh = await r.http('POST', '/v2/demo/blobs/uploads/');
    const stray = join(r.dataDir, 'registry', 'uploads', '00000000-0000-0000-0000-000000000000');
    writeFileSync(stray, 'left over');
    utimesSync(stray, new Date(Date.now() - 3 * 86400_000), new Date(Date.now() - 3 * 86400_000));
    // Age the first session past the 24 h expiry.
    r.daemon.store.db.prepare('UPDATE registry_uploads SET updated_at = ? WHERE id = ?').run(Date.now() - 25 * 3600_000, String(post.headers['docker-upload-uuid']));
    const removed = await r.daemon.registry.uploads.sweep(r.daemon.registry.uploadExpiryMs);
    assert.equal(removed, 2);
    assert.equal((await r.http('GET', String(post.headers.location))).status, 404);
    assert.equal((await r.http('GET', String(fresh.headers.location))).status, 204);
    assert.equal(existsSync(stray), false);
    assert.deepEqual(uploadFiles(r.dataDir), [String(fresh.headers['docker-upload-uuid'])]);
  } finally {
    await r.close();
  }
});
