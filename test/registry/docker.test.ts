import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run } from '../../src/shared/process.js';
import { writeDockerConfig } from '../../src/registry/index.js';
import { writeBusyboxImage } from '../fixtures/busybox-image.js';
import { makeTar } from '../fixtures/tar-writer.js';
import { startRegistry, type RegistryFixture } from './helpers.js';

const DOCKERD = '/usr/sbin/dockerd';
// Debian's client matches the Debian engine's API version.
const DOCKER = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
const available = existsSync(DOCKERD) || existsSync('/usr/bin/dockerd');

let r: RegistryFixture;
let tmp: string;
let dockerd: ChildProcess | undefined;
let env: NodeJS.ProcessEnv;

before(async () => {
  if (!available) return;
  r = await startRegistry();
  // A short path: the docker socket path must fit in sun_path.
  tmp = mkdtempSync(join('/tmp', 'hgdk-'));
  const sock = join(tmp, 'docker.sock');
  dockerd = spawn(
    existsSync(DOCKERD) ? DOCKERD : '/usr/bin/dockerd',
    ['--iptables=false', '--ip6tables=false', '--bridge=none', '--data-root', join(tmp, 'data'), '--exec-root', join(tmp, 'exec'), '--pidfile', join(tmp, 'docker.pid'), '-H', `unix://${sock}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  dockerd.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const home = join(tmp, 'home');
  mkdirSync(home, { recursive: true });
  env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: join(home, '.docker'), HOME: home };
  const deadline = Date.now() + 60_000;
  for (;;) {
    const v = await run(DOCKER, ['version', '--format', '{{.Server.Version}}'], { env, allowFailure: true });
    if (v.code === 0) break;
    if (Date.now() > deadline || dockerd.exitCode !== null) throw new Error(`dockerd did not start: ${log}`);
    await new Promise((res) => setTimeout(res, 300));
  }
});

after(async () => {
  if (!available) return;
  if (dockerd && dockerd.exitCode === null) {
    const exited = new Promise((res) => dockerd!.once('exit', res));
    dockerd.kill('SIGTERM');
    await Promise.race([exited, new Promise((res) => setTimeout(res, 20_000))]);
    if (dockerd.exitCode === null) dockerd.kill('SIGKILL');
  }
  await r.close();
  await run('umount', ['-R', join(tmp, 'data')], { allowFailure: true });
  rmSync(tmp, { recursive: true, force: true });
});

test('docker push and docker pull of a multi-layer image after `hangar auth docker`', { skip: !available && 'dockerd is not installed', timeout: 300_000 }, async () => {
  const docker = (...args: string[]) => run(DOCKER, args, { env, timeoutMs: 180_000 });
  writeDockerConfig({ host: r.host, token: r.token, home: env.HOME!, dockerConfigDir: env.DOCKER_CONFIG! });

  const layout = join(tmp, 'layout');
  writeBusyboxImage(layout, {
    extraLayers: [
      { tar: makeTar([{ name: 'data/', type: 'dir' }, { name: 'data/blob.bin', body: randomBytes(512 * 1024) }]) },
      { tar: makeTar([{ name: 'etc/motd', body: 'docker test\n' }]) },
    ],
  });
  const archive = join(tmp, 'image.tar');
  await run('skopeo', ['copy', `oci:${layout}:latest`, `docker-archive:${archive}:hangar-test/busybox:latest`], { env });
  await docker('load', '-i', archive);

  const ref = `${r.host}/demo/web:v1`;
  await docker('tag', 'hangar-test/busybox:latest', ref);
  const push = await docker('push', ref);
  assert.match(push.stdout, /v1: digest: sha256:[0-9a-f]{64}/);
  const pushedDigest = /digest: (sha256:[0-9a-f]{64})/.exec(push.stdout)![1]!;

  const tags = await r.http('GET', '/v2/demo/web/tags/list');
  assert.deepEqual(tags.json().tags, ['v1']);
  const head = await r.http('HEAD', '/v2/demo/web/manifests/v1');
  assert.equal(head.headers['content-type'], 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(head.headers['docker-content-digest'], pushedDigest);

  // A second repository of the same org: docker mounts the layers across repositories.
  const ref2 = `${r.host}/other/copy:v1`;
  await docker('tag', ref, ref2);
  const push2 = await docker('push', ref2);
  assert.match(push2.stdout, /Mounted from demo\/web|Layer already exists/);

  await docker('rmi', ref, ref2, 'hangar-test/busybox:latest');
  const pull = await docker('pull', ref);
  assert.match(pull.stdout, new RegExp(`Digest: ${pushedDigest}`));
  const inspect = JSON.parse((await docker('image', 'inspect', ref)).stdout);
  assert.equal(inspect[0].RootFS.Layers.length, 3);

  // `docker login` (the token dance against /auth/token) works as well as the written config.
  await docker('logout', r.host);
  await docker('rmi', ref);
  assert.notEqual((await run(DOCKER, ['pull', ref], { env, allowFailure: true })).code, 0, 'logged out: pull refused');
  const login = await run(DOCKER, ['login', '-u', 'anyone', '--password-stdin', r.host], { env, input: r.token });
  assert.match(login.stdout, /Login Succeeded/);
  await docker('pull', ref);

  // Another org's credentials are refused by docker too.
  writeDockerConfig({ host: r.host, token: r.rivalToken, home: env.HOME!, dockerConfigDir: env.DOCKER_CONFIG! });
  await docker('rmi', ref);
  const denied = await run(DOCKER, ['pull', ref], { env, allowFailure: true });
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /denied|unauthorized/i);
});
