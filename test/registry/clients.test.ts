import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run } from '../../src/shared/process.js';
import { writeDockerConfig } from '../../src/registry/index.js';
import { writeBusyboxImage } from '../fixtures/busybox-image.js';
import { makeTar } from '../fixtures/tar-writer.js';
import { startRegistry, sha256, type RegistryFixture } from './helpers.js';

let r: RegistryFixture;
let tmp: string;
let env: NodeJS.ProcessEnv;
let layout: string;
let image: ReturnType<typeof writeBusyboxImage>;

before(async () => {
  r = await startRegistry();
  tmp = mkdtempSync(join(tmpdir(), 'hangar-clients-'));
  const home = join(tmp, 'home');
  mkdirSync(join(tmp, 'run'), { recursive: true, mode: 0o700 });
  // `hangar auth docker` is the only set-up step: no --creds, no --tls-verify flags below.
  writeDockerConfig({ host: r.host, token: r.token, home, dockerConfigDir: join(home, '.docker') });
  env = { ...process.env, HOME: home, DOCKER_CONFIG: join(home, '.docker'), XDG_RUNTIME_DIR: join(tmp, 'run'), REGISTRY_AUTH_FILE: '' };
  delete env.REGISTRY_AUTH_FILE;
  layout = join(tmp, 'layout');
  image = writeBusyboxImage(layout, {
    extraLayers: [
      { tar: makeTar([{ name: 'data/', type: 'dir' }, { name: 'data/random.bin', body: randomBytes(1 << 20) }]) },
      { tar: makeTar([{ name: 'etc/motd', body: 'hello from hangar\n' }]) },
    ],
  });
});
after(async () => {
  await r.close();
  rmSync(tmp, { recursive: true, force: true });
});

const skopeo = (...args: string[]) => run('skopeo', args, { env, timeoutMs: 120_000 });

test('skopeo copy oci: → registry → oci: round trip, inspect, list-tags', async () => {
  await skopeo('copy', `oci:${layout}:latest`, `docker://${r.host}/demo/busybox:v1`);
  const inspect = JSON.parse((await skopeo('inspect', `docker://${r.host}/demo/busybox:v1`)).stdout);
  assert.equal(inspect.Digest, image.manifestDigest, 'the manifest is stored byte for byte');
  assert.deepEqual(inspect.Layers, image.layerDigests);
  assert.deepEqual(inspect.RepoTags, ['v1']);
  const raw = (await skopeo('inspect', '--raw', `docker://${r.host}/demo/busybox@${image.manifestDigest}`)).stdout;
  assert.equal(sha256(raw), image.manifestDigest);

  await skopeo('copy', `docker://${r.host}/demo/busybox:v1`, `docker://${r.host}/demo/busybox:v2`);
  const tags = JSON.parse((await skopeo('list-tags', `docker://${r.host}/demo/busybox`)).stdout);
  assert.deepEqual(tags.Tags.sort(), ['v1', 'v2']);

  const out = join(tmp, 'out');
  await skopeo('copy', `docker://${r.host}/demo/busybox:v2`, `oci:${out}:pulled`);
  for (const d of [...image.layerDigests, image.configDigest, image.manifestDigest]) {
    const pulled = readFileSync(join(out, 'blobs', 'sha256', d.slice(7)));
    assert.equal(sha256(pulled), d);
    assert.deepEqual(pulled, readFileSync(join(layout, 'blobs', 'sha256', d.slice(7))));
  }
});

test('skopeo converts to Docker schema 2 on push; the registry serves the Docker media type', async () => {
  await skopeo('copy', '--format', 'v2s2', `oci:${layout}:latest`, `docker://${r.host}/demo/docker-format:v1`);
  const raw = JSON.parse((await skopeo('inspect', '--raw', `docker://${r.host}/demo/docker-format:v1`)).stdout);
  assert.equal(raw.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  const head = await r.http('HEAD', '/v2/demo/docker-format/manifests/v1');
  assert.equal(head.headers['content-type'], 'application/vnd.docker.distribution.manifest.v2+json');
  // Pull it back through skopeo into a directory.
  await skopeo('copy', `docker://${r.host}/demo/docker-format:v1`, `dir:${join(tmp, 'dir-out')}`);
});

test('another org cannot pull with its own credentials through skopeo', async () => {
  await skopeo('copy', `oci:${layout}:latest`, `docker://${r.host}/demo/private:v1`);
  const res = await run('skopeo', ['inspect', '--creds', `x:${r.rivalToken}`, `docker://${r.host}/demo/private:v1`], { env, allowFailure: true });
  assert.notEqual(res.code, 0);
  assert.match(res.stderr, /denied|unauthorized|403|401/i);
});

test('buildah pull and push (vfs storage in a temp dir)', async () => {
  await skopeo('copy', `oci:${layout}:latest`, `docker://${r.host}/demo/buildah:src`);
  const storage = ['--root', join(tmp, 'bh-root'), '--runroot', join(tmp, 'bh-run'), '--storage-driver', 'vfs'];
  const buildah = (...args: string[]) => run('buildah', [...storage, ...args], { env, timeoutMs: 180_000 });
  try {
    await buildah('pull', '--quiet', `docker://${r.host}/demo/buildah:src`);
    const id = (await buildah('images', '--quiet', '--no-trunc', `${r.host}/demo/buildah:src`)).stdout.trim();
    assert.ok(id);
    await buildah('push', '--quiet', `${r.host}/demo/buildah:src`, `docker://${r.host}/demo/buildah:pushed`);
    const inspect = JSON.parse((await skopeo('inspect', `docker://${r.host}/demo/buildah:pushed`)).stdout);
    assert.equal(inspect.Layers.length, 3);
    assert.deepEqual(JSON.parse((await skopeo('list-tags', `docker://${r.host}/demo/buildah`)).stdout).Tags.sort(), ['pushed', 'src']);
  } finally {
    await run('buildah', [...storage, 'rmi', '--all', '--force'], { env, allowFailure: true });
    // vfs layers can hold read-only dirs; make them removable.
    await run('chmod', ['-R', 'u+w', join(tmp, 'bh-root')], { allowFailure: true });
  }
});

test('podman pull and push with only `hangar auth docker` set up', async () => {
  await skopeo('copy', `oci:${layout}:latest`, `docker://${r.host}/demo/podman:src`);
  const storage = ['--root', join(tmp, 'pd-root'), '--runroot', join(tmp, 'pd-run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none'];
  const podman = (...args: string[]) => run('podman', [...storage, ...args], { env, timeoutMs: 180_000 });
  try {
    await podman('pull', '--quiet', `${r.host}/demo/podman:src`);
    await podman('push', '--quiet', `${r.host}/demo/podman:src`, `${r.host}/demo/podman:pushed`);
    assert.deepEqual(JSON.parse((await skopeo('list-tags', `docker://${r.host}/demo/podman`)).stdout).Tags.sort(), ['pushed', 'src']);
  } finally {
    await run('podman', [...storage, 'rmi', '--all', '--force'], { env, allowFailure: true });
    await run('chmod', ['-R', 'u+w', join(tmp, 'pd-root')], { allowFailure: true });
  }
});
