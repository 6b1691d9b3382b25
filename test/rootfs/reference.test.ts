import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseImageReference, formatReference, RootfsCache } from '../../src/rootfs/index.js';
import { HangarError } from '../../src/shared/errors.js';
import { writeBusyboxImage } from '../fixtures/busybox-image.js';
import { ociLayoutStore } from '../fixtures/oci-layout.js';
import { parseChallenge, isLoopbackHost } from '../../src/rootfs/registry-client.js';
import { tempDir } from './helpers.js';

const D = `sha256:${'a'.repeat(64)}`;

test('references in every form users write', () => {
  const cases: [string, string, Partial<ReturnType<typeof parseImageReference>>][] = [
    ['debian', 'docker.io/library/debian:latest', { host: undefined, path: 'debian', tag: 'latest' }],
    ['library/debian', 'docker.io/library/debian:latest', { path: 'library/debian' }],
    ['docker.io/debian:12', 'docker.io/library/debian:12', { host: 'docker.io' }],
    ['docker.io/acme/app', 'docker.io/acme/app:latest', {}],
    ['index.docker.io/library/debian', 'docker.io/library/debian:latest', {}],
    ['app:v1', 'docker.io/library/app:v1', { path: 'app', reference: 'v1' }],
    ['myorg/app:v1', 'docker.io/myorg/app:v1', {}],
    ['127.0.0.1:5000/app:deployment-123', '127.0.0.1:5000/app:deployment-123', { registry: '127.0.0.1:5000', repository: 'app' }],
    ['localhost/app', 'localhost/app:latest', { host: 'localhost' }],
    ['localhost:5000/a/b/c:t', 'localhost:5000/a/b/c:t', {}],
    ['registry.example.com/app', 'registry.example.com/app:latest', {}],
    [`app@${D}`, `docker.io/library/app@${D}`, { tag: undefined, digest: D, reference: D }],
    [`host:5000/app:v1@${D}`, `host:5000/app:v1@${D}`, { tag: 'v1', reference: D }],
    ['[::1]:5000/app', '[::1]:5000/app:latest', { host: '[::1]:5000' }],
  ];
  for (const [input, canonical, parts] of cases) {
    const r = parseImageReference(input);
    assert.equal(formatReference(r), canonical, input);
    for (const [k, v] of Object.entries(parts)) assert.deepEqual(r[k as keyof typeof r], v, `${input}: ${k}`);
  }
});

test('bad references are refused with a readable error', () => {
  for (const bad of ['', 'App', 'app:', 'app:-x', 'app@sha256:123', 'a//b', 'app:v1:v2/x', 'UPPER.example.com/App', '-app', 'app/']) {
    assert.throws(
      () => parseImageReference(bad),
      (e: HangarError) => e.code === 'BAD_IMAGE_REFERENCE' && /invalid image reference/.test(e.message),
      bad,
    );
  }
});

test('WWW-Authenticate parsing and loopback detection', () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' },
  });
  assert.deepEqual(parseChallenge('Basic realm="x"'), { scheme: 'basic', params: { realm: 'x' } });
  for (const h of ['127.0.0.1:5000', '127.1.2.3', 'localhost:1', '[::1]:5000']) assert.ok(isLoopbackHost(h), h);
  for (const h of ['10.0.0.1:5000', 'example.com', '128.0.0.1', 'localhost.example.com']) assert.equal(isLoopbackHost(h), false, h);
});

test('host-less references use the local store, including Docker Hub names mirrored there', async () => {
  const t = tempDir();
  try {
    const layout = join(t.dir, 'layout');
    const img = writeBusyboxImage(layout, { tag: 'bookworm' });
    const cache = new RootfsCache({
      dataDir: join(t.dir, 'data'),
      localStore: ociLayoutStore(layout, 'library/debian'),
      dockerHubFallback: false,
    });
    assert.equal((await cache.inspect('debian:bookworm')).digest, img.manifestDigest);
    assert.equal((await cache.inspect('library/debian:bookworm')).digest, img.manifestDigest);
    await assert.rejects(cache.inspect('debian:sid'), (e: HangarError) => e.code === 'IMAGE_NOT_FOUND' && /not in Hangar's registry/.test(e.message));
  } finally {
    t.cleanup();
  }
});
