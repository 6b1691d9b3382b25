/**
 * Docker Hub names in deploys and machine creates go through the registry's
 * pull-through mirror (upstream: Debian's docker-registry on 127.0.0.1),
 * never straight to Docker Hub; an app's own repository still wins.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { pushBusybox } from '../helpers/machines.js';
import { writeBusyboxImage } from '../fixtures/busybox-image.js';
import { pushLayout, startRegistry, type TestRegistry } from '../fixtures/registry.js';
import { resolveDeployImage } from '../../src/deploy/index.js';
import { createImageProvider } from '../../src/daemon/image-provider.js';
import type { App } from '../../src/accounts/index.js';

const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

describe('Docker Hub names through the pull-through mirror', () => {
  let upstream: TestRegistry;
  let t: TestDaemon;
  let tmp: string;
  let host: string;
  let demo: App;
  const digests: Record<string, string> = {};

  const resolve = (ref: string, d: TestDaemon = t) =>
    resolveDeployImage({ ref, app: demo, accounts: d.daemon.accounts, images: d.daemon.registry, registryHosts: [new URL(d.daemon.url).host] });

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'hangar-hub-names-'));
    upstream = await startRegistry();
    // Each image prints its name, so a machine shows which copy it runs.
    for (const name of ['bbox', 'bbox2', 'shadow']) {
      const layout = join(tmp, name);
      const img = writeBusyboxImage(layout, { tag: 'v1', config: { Cmd: ['/bin/sh', '-c', `echo image-${name}-up; sleep 600`], Env: [PATH_ENV], WorkingDir: '/' } });
      pushLayout(layout, 'v1', `${upstream.host}/library/${name}:v1`);
      digests[name] = img.manifestDigest;
    }
    t = await startTestDaemon({ mirrorUpstream: `http://${upstream.host}` });
    host = new URL(t.daemon.url).host;
    const acme = t.daemon.accounts.createOrg('acme');
    demo = t.daemon.accounts.createApp('demo', acme.id);
    t.daemon.accounts.createApp('shadow', acme.id);
  });

  after(async () => {
    await t?.close();
    await upstream?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('a bare name only the upstream has resolves to the mirrored copy, complete and pinned by digest', async () => {
    assert.equal(t.daemon.registry.resolveManifest('docker.io/library/bbox', 'v1'), undefined, 'not in the store before');
    const r = await resolve('bbox:v1');
    assert.equal(r.repository, 'docker.io/library/bbox');
    assert.equal(r.digest, digests.bbox);
    assert.equal(r.image, `${host}/docker.io/library/bbox:v1`);
    assert.equal(r.ref, `${host}/docker.io/library/bbox:v1@${digests.bbox}`);
    // Config and layers are in the store when resolution returns (the rootfs cache reads them directly).
    const manifest = JSON.parse(readFileSync(t.daemon.registry.blobPath(digests.bbox!)!, 'utf8')) as { config: { digest: string }; layers: Array<{ digest: string }> };
    for (const d of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) assert.ok(t.daemon.registry.blobPath(d), `blob ${d} stored`);
    // The other spellings of the same Docker Hub image.
    for (const ref of ['library/bbox:v1', 'docker.io/library/bbox:v1', 'index.docker.io/library/bbox:v1', 'docker.io/bbox:v1']) {
      const o = await resolve(ref);
      assert.equal(o.repository, 'docker.io/library/bbox', ref);
      assert.equal(o.digest, digests.bbox, ref);
    }
  });

  test('an unknown Docker Hub name gives IMAGE_NOT_FOUND, through the API too', async () => {
    for (const ref of ['nosuch:v1', 'docker.io/library/nosuch:v1', 'bbox:nosuchtag']) {
      await assert.rejects(resolve(ref), (e: { code: string; status: number; message: string }) => {
        assert.equal(e.code, 'IMAGE_NOT_FOUND', ref);
        assert.equal(e.status, 404);
        assert.match(e.message, /neither in Hangar's registry nor on the Docker Hub mirror's upstream/);
        return true;
      });
    }
    const dep = await t.api('POST', '/v1/apps/demo/deploys', { image: 'nosuch:v1', config: { app: 'demo' }, detach: true });
    assert.equal(dep.status, 404, JSON.stringify(dep.body));
    assert.match(JSON.stringify(dep.body), /IMAGE_NOT_FOUND/);
    const m = await t.api('POST', '/v1/apps/demo/machines', { config: { image: 'nosuch:v1' } });
    assert.equal(m.status, 404, JSON.stringify(m.body));
    assert.match(JSON.stringify(m.body), /neither in Hangar's registry nor on the Docker Hub mirror's upstream/);
  });

  test("an app's own repository wins over the Docker Hub name of the same spelling", async () => {
    // App "shadow" has no image yet: its name never goes upstream, though the upstream has library/shadow.
    await assert.rejects(resolve('shadow:v1'), (e: { code: string; message: string }) => e.code === 'IMAGE_NOT_FOUND' && /build and push it first/.test(e.message));
    assert.equal(t.daemon.registry.resolveManifest('docker.io/library/shadow', 'v1'), undefined, 'nothing was pulled through');
    await pushBusybox(t, 'shadow', 'v1');
    const r = await resolve('shadow:v1');
    assert.equal(r.repository, 'shadow');
    assert.notEqual(r.digest, digests.shadow);
    assert.equal(t.daemon.registry.resolveManifest('docker.io/library/shadow', 'v1'), undefined);
  });

  test('the machines image provider pulls a bare Docker Hub name through the mirror and pins it', async () => {
    const provider = createImageProvider({ cache: t.daemon.rootfs, accounts: t.daemon.accounts, localHosts: () => [host], images: t.daemon.registry });
    const got = await provider.acquire('bbox2:v1', { app: 'demo' });
    try {
      assert.equal(got.ref.repository, 'docker.io/library/bbox2');
      assert.equal(got.ref.registry, 'hangar');
      assert.equal(got.ref.digest, digests.bbox2);
      assert.deepEqual(got.config.cmd, ['/bin/sh', '-c', 'echo image-bbox2-up; sleep 600']);
    } finally {
      got.release();
    }
    assert.ok(t.daemon.registry.resolveManifest('docker.io/library/bbox2', 'v1'));
  });

  test('deploy --image with a bare name only the upstream has runs the mirrored copy (one VM boot)', { timeout: 300_000 }, async () => {
    const r = await t.api('POST', '/v1/apps/demo/deploys', { image: 'bbox:v1', config: { app: 'demo' }, wait_timeout: '120s' });
    assert.equal(r.status, 200);
    const lines = (typeof r.body === 'string' ? r.body : JSON.stringify(r.body)).trim().split('\n').map((l) => JSON.parse(l) as { result?: { release: { image: string; status: string } }; error?: unknown });
    const result = lines.find((l) => l.result)?.result;
    assert.ok(result, JSON.stringify(lines));
    assert.equal(result.release.status, 'complete');
    const images = (await t.api('GET', '/v1/apps/demo/images')).body;
    assert.equal(images.release.image, `${host}/docker.io/library/bbox:v1`);
    assert.equal(images.release.digest, digests.bbox);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const logs = (await t.api('GET', '/v1/apps/demo/logs?limit=1000')).body as Array<{ message: string }>;
      if (logs.some((l) => l.message.includes('image-bbox-up'))) break;
      assert.ok(Date.now() < deadline, `the machine never printed its image's line: ${JSON.stringify(logs.slice(-10))}`);
      await new Promise((res) => setTimeout(res, 200));
    }
  });
});

describe('Docker Hub names without pull-through', () => {
  test('keep the old answers: a bare name misses, a docker.io reference is passed on unchanged', async () => {
    const t = await startTestDaemon();
    try {
      const acme = t.daemon.accounts.createOrg('acme');
      const app = t.daemon.accounts.createApp('demo', acme.id);
      const resolve = (ref: string) => resolveDeployImage({ ref, app, accounts: t.daemon.accounts, images: t.daemon.registry, registryHosts: [new URL(t.daemon.url).host] });
      await assert.rejects(resolve('bbox:v1'), (e: { code: string }) => e.code === 'IMAGE_NOT_FOUND');
      assert.deepEqual(await resolve('docker.io/library/bbox:v1'), { image: 'docker.io/library/bbox:v1', ref: 'docker.io/library/bbox:v1', digest: null, repository: null });
    } finally {
      await t.close();
    }
  });
});
