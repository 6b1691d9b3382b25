/**
 * Pulls from real registries on 127.0.0.1: Debian's docker-registry, open,
 * behind htpasswd (Basic), and behind a Docker-style token service (Bearer).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RootfsCache } from '../../src/rootfs/index.js';
import { HangarError } from '../../src/shared/errors.js';
import { writeBusyboxImage, BUSYBOX } from '../fixtures/busybox-image.js';
import { writeOciImage, writeOciIndex } from '../fixtures/oci-layout.js';
import { makeTar } from '../fixtures/tar-writer.js';
import { pushLayout, startRegistry, startTokenFront, type TestRegistry, type TokenFront } from '../fixtures/registry.js';
import { mountErofs, tempDir } from './helpers.js';

const creds = { username: 'deployer', password: 's3cret-pw' };

describe('remote registries', () => {
  let reg: TestRegistry;
  let basicReg: TestRegistry;
  let front: TokenFront;
  const t = tempDir();
  const layout = join(t.dir, 'layout');
  let busybox: ReturnType<typeof writeBusyboxImage>;

  before(async () => {
    [reg, basicReg] = await Promise.all([startRegistry(), startRegistry({ htpasswd: creds })]);
    front = await startTokenFront(reg.host, { ...creds, publicRepos: ['public/busybox'] });
    busybox = writeBusyboxImage(layout, { tag: 'v1', compression: 'zstd', config: { Cmd: ['/bin/sh'], User: 'nobody' } });
    pushLayout(layout, 'v1', `${reg.host}/library/busybox:v1`);
    pushLayout(layout, 'v1', `${reg.host}/public/busybox:v1`);
    pushLayout(layout, 'v1', `${reg.host}/private/busybox:v1`);
    pushLayout(layout, 'v1', `${basicReg.host}/team/busybox:v1`, { creds: `${creds.username}:${creds.password}` });
    // Docker v2 schema 2 (skopeo converts; zstd is not allowed there, so a gzip image)
    writeBusyboxImage(layout, { tag: 'gz' });
    pushLayout(layout, 'gz', `${reg.host}/docker/busybox:v2s2`, { format: 'v2s2' });
    // a multi-platform index: amd64 + arm64, and one with no amd64 at all
    const arm = writeOciImage(layout, { tag: 'arm', architecture: 'arm64', layers: [{ tar: makeTar([{ name: 'arm', body: 'arm' }]) }] });
    const ppc = writeOciImage(layout, { tag: 'ppc', architecture: 'ppc64le', layers: [{ tar: makeTar([{ name: 'ppc', body: 'ppc' }]) }] });
    const amd = writeBusyboxImage(layout, { tag: 'amd' });
    writeOciIndex(layout, 'multi', [
      { digest: arm.manifestDigest, size: arm.manifest.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { digest: amd.manifestDigest, size: amd.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
    ]);
    writeOciIndex(layout, 'noamd', [
      { digest: arm.manifestDigest, size: arm.manifest.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { digest: ppc.manifestDigest, size: ppc.manifest.length, platform: { os: 'linux', architecture: 'ppc64le' } },
    ]);
    pushLayout(layout, 'multi', `${reg.host}/multi/app:1`, { all: true });
    pushLayout(layout, 'noamd', `${reg.host}/multi/app:noamd`, { all: true });
    pushLayout(layout, 'arm', `${reg.host}/single/arm:1`);
  });

  after(async () => {
    await Promise.all([reg?.stop(), basicReg?.stop(), front?.stop()]);
    t.cleanup();
  });

  const newCache = (name: string) => new RootfsCache({ dataDir: join(t.dir, name) });

  test('anonymous pull over HTTP from a loopback registry, zstd layer, digest pinned', async () => {
    const cache = newCache('anon');
    const got = await cache.acquire(`${reg.host}/library/busybox:v1`);
    assert.equal(got.digest, busybox.manifestDigest);
    assert.equal(got.config.user, 'nobody');
    const m = mountErofs(got.imagePath, join(t.dir, 'mnt-anon'));
    try {
      assert.deepEqual(readFileSync(join(m.dir, 'bin/busybox')), readFileSync(BUSYBOX));
    } finally {
      m.unmount();
    }
    const byDigest = await cache.acquire(`${reg.host}/library/busybox@${busybox.manifestDigest}`);
    assert.equal(byDigest.converted, false);
    assert.equal(byDigest.imagePath, got.imagePath);
    got.lease.release();
    byDigest.lease.release();
    await assert.rejects(cache.acquire(`${reg.host}/library/busybox@sha256:${'1'.repeat(64)}`), (e: HangarError) => e.code === 'IMAGE_NOT_FOUND');
    await assert.rejects(cache.acquire(`${reg.host}/library/busybox:nope`), (e: HangarError) => e.code === 'IMAGE_NOT_FOUND' && /not found/.test(e.message));
  });

  test('Docker v2 schema 2 manifests', async () => {
    const info = await newCache('v2s2').inspect(`${reg.host}/docker/busybox:v2s2`);
    assert.equal(info.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    const got = await newCache('v2s2').acquire(`${reg.host}/docker/busybox:v2s2`);
    assert.ok(got.sizeBytes > 500_000);
    got.lease.release();
  });

  test('an index resolves to its linux/amd64 image; without one, the error names what is offered', async () => {
    const cache = newCache('multi');
    const info = await cache.inspect(`${reg.host}/multi/app:1`);
    assert.deepEqual(info.platform, { os: 'linux', architecture: 'amd64' });
    assert.ok(info.indexDigest);
    const got = await cache.acquire(`${reg.host}/multi/app:1`);
    assert.equal(got.digest, info.digest);
    got.lease.release();
    await assert.rejects(
      cache.acquire(`${reg.host}/multi/app:noamd`),
      (e: HangarError) => e.code === 'PLATFORM_NOT_FOUND' && /offers linux\/arm64\/v8, linux\/ppc64le/.test(e.message),
    );
    await assert.rejects(cache.acquire(`${reg.host}/single/arm:1`), (e: HangarError) => e.code === 'PLATFORM_NOT_FOUND' && /linux\/arm64/.test(e.message));
  });

  test('Basic auth (htpasswd): refused without credentials, works with them', async () => {
    const cache = newCache('basic');
    await assert.rejects(cache.acquire(`${basicReg.host}/team/busybox:v1`), (e: HangarError) => e.code === 'REGISTRY_AUTH' && /needs credentials/.test(e.message));
    await assert.rejects(
      cache.acquire(`${basicReg.host}/team/busybox:v1`, { credentials: { ...creds, password: 'wrong' } }),
      (e: HangarError) => e.code === 'REGISTRY_AUTH' && /check the registry credentials/.test(e.message),
    );
    const got = await cache.acquire(`${basicReg.host}/team/busybox:v1`, { credentials: creds });
    assert.equal(got.digest, busybox.manifestDigest);
    got.lease.release();
  });

  test('Bearer token flow: anonymous token for a public repo, credentials for a private one', async () => {
    const cache = newCache('bearer');
    const pub = await cache.acquire(`${front.host}/public/busybox:v1`);
    assert.equal(pub.digest, busybox.manifestDigest);
    pub.lease.release();
    assert.ok(front.issued.some((i) => i.scope === 'repository:public/busybox:pull' && i.user === null), JSON.stringify(front.issued));

    await assert.rejects(newCache('bearer2').inspect(`${front.host}/private/busybox:v1`), (e: HangarError) => e.code === 'REGISTRY_AUTH' && /anonymous access/.test(e.message));
    await assert.rejects(
      newCache('bearer3').inspect(`${front.host}/private/busybox:v1`, { credentials: { ...creds, password: 'nope' } }),
      (e: HangarError) => e.code === 'REGISTRY_AUTH' && /user deployer/.test(e.message),
    );
    const priv = await newCache('bearer4').acquire(`${front.host}/private/busybox:v1`, { credentials: creds });
    assert.equal(priv.digest, busybox.manifestDigest);
    priv.lease.release();
    assert.ok(front.issued.some((i) => i.scope === 'repository:private/busybox:pull' && i.user === 'deployer'));
  });

  test('an unreachable registry fails with a clear error', async () => {
    await assert.rejects(newCache('down').inspect('127.0.0.1:1/app:v1'), (e: HangarError) => e.code === 'REGISTRY_UNREACHABLE' && /cannot reach registry 127\.0\.0\.1:1/.test(e.message));
  });
});
