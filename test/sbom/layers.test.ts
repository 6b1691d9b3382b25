import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../src/shared/process.js';
import { isHangarError } from '../../src/shared/errors.js';
import { inventoryFromDirectory, inventoryFromLayers, type Inventory } from '../../src/sbom/index.js';
import { ALPINE_OS_RELEASE, APK_INSTALLED, debianBaseLayer, dpkgStanza, NEW_DPKG_STATUS, npmAppLayer, pythonLayer, tempDir, writeLayers } from './fixtures.js';

const summary = (inv: Inventory) => inv.packages.map((p) => `${p.purl} ${p.ecosystem ?? '-'} ${p.locations.join(',')}`);

test('a Debian image with an npm app and Python packages: every package, purl and ecosystem', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-layers');
  t.after(cleanup);
  const layers = await writeLayers(dir, [
    { items: debianBaseLayer(), compression: 'gzip' },
    { items: npmAppLayer(), compression: 'zstd' },
    { items: pythonLayer(), compression: 'none' },
  ]);
  const inv = await inventoryFromLayers(layers);
  assert.deepEqual(inv.distro, { id: 'debian', versionId: '12', codename: 'bookworm', prettyName: 'Debian GNU/Linux 12 (bookworm)' });
  assert.deepEqual(summary(inv), [
    'pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12 Debian:12 /var/lib/dpkg/status',
    'pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12 Debian:12 /var/lib/dpkg/status',
    'pkg:deb/debian/openssl@3.0.11-1~deb12u1?arch=amd64&distro=debian-12 Debian:12 /var/lib/dpkg/status',
    'pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12 Debian:12 /var/lib/dpkg/status',
    'pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12 Debian:12 /var/lib/dpkg/status',
    'pkg:npm/%40babel/traverse@7.22.0 npm /app/node_modules/@babel/traverse/package.json,/app/package-lock.json',
    'pkg:npm/%40esbuild/linux-x64@0.19.0 npm /app/package-lock.json',
    'pkg:npm/debug@2.6.9 npm /app/package-lock.json',
    'pkg:npm/express@4.19.2 npm /app/package-lock.json',
    'pkg:npm/lodash@4.17.20 npm /app/node_modules/lodash/package.json,/app/package-lock.json',
    'pkg:npm/minimist@1.2.5 npm /app/package-lock.json',
    'pkg:pypi/pyyaml@5.3.1 PyPI /usr/lib/python3/dist-packages/PyYAML-5.3.1.egg-info',
    'pkg:pypi/requests@2.25.0 PyPI /usr/lib/python3/dist-packages/requests-2.25.0.dist-info/METADATA',
  ]);
  const bash = inv.packages.find((p) => p.name === 'bash')!;
  assert.equal(bash.sourceName, 'bash');
  assert.equal(bash.sourceVersion, '5.2.15-2', 'binNMU: the source version is in parentheses');
  const ssl = inv.packages.find((p) => p.name === 'libssl3')!;
  assert.equal(ssl.sourceName, 'openssl');
  assert.equal(ssl.description, 'Secure Sockets Layer toolkit - shared libraries');
  assert.equal(inv.packages.find((p) => p.name === 'requests')!.license, 'Apache 2.0');
  assert.deepEqual(inv.warnings, []);
});

test('a later layer replacing the dpkg status wins', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-replace');
  t.after(cleanup);
  const layers = await writeLayers(dir, [{ items: debianBaseLayer() }, { items: [{ path: 'var/lib/dpkg/status', data: NEW_DPKG_STATUS }] }]);
  const inv = await inventoryFromLayers(layers);
  assert.equal(inv.packages.find((p) => p.name === 'openssl')?.version, '3.0.15-1~deb12u1');
  assert.equal(inv.packages.find((p) => p.name === 'curl')?.version, '7.88.1-10+deb12u5');
  assert.equal(inv.packages.filter((p) => p.type === 'deb').length, 6);
});

test('whiteouts: a deleted dpkg status, a deleted directory, an opaque status.d', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-whiteout');
  t.after(cleanup);
  // File whiteout: only the app's packages remain.
  let layers = await writeLayers(dir, [{ items: debianBaseLayer() }, { items: [{ path: 'var/lib/dpkg/.wh.status', data: '' }, ...npmAppLayer()] }]);
  let inv = await inventoryFromLayers(layers);
  assert.equal(inv.packages.filter((p) => p.type === 'deb').length, 0);
  assert.ok(inv.packages.some((p) => p.name === 'lodash'));

  // Directory whiteout on an ancestor, then a fresh status in the same later layer survives.
  layers = await writeLayers(dir, [
    { items: debianBaseLayer() },
    { items: [{ path: 'var/lib/.wh.dpkg', data: '' }, { path: 'var/lib/dpkg/status', data: dpkgStanza({ Package: 'only', Status: 'install ok installed', Version: '1.0', Architecture: 'amd64' }) + '\n' }] },
  ]);
  inv = await inventoryFromLayers(layers);
  assert.deepEqual(inv.packages.map((p) => `${p.name}@${p.version}`), ['only@1.0']);

  // Distroless status.d: an opaque whiteout hides the lower files; .md5sums are not packages.
  const st = (name: string, v: string) => ({ path: `var/lib/dpkg/status.d/${name}`, data: dpkgStanza({ Package: name, Version: v, Architecture: 'amd64' }) + '\n' });
  layers = await writeLayers(dir, [
    { items: [...debianBaseLayer().filter((i) => !i.path.endsWith('status')), st('base-files', '12.4'), st('libc6', '2.36-9'), { path: 'var/lib/dpkg/status.d/libc6.md5sums', data: 'abc  lib/x\n' }] },
    { items: [{ path: 'var/lib/dpkg/status.d/.wh..wh..opq', data: '' }, st('libc6', '2.36-9+deb12u4')] },
  ]);
  inv = await inventoryFromLayers(layers);
  assert.deepEqual(inv.packages.map((p) => `${p.name}@${p.version}`), ['libc6@2.36-9+deb12u4']);

  // Deleting everything leaves no package data, which is an error unless asked otherwise.
  layers = await writeLayers(dir, [{ items: debianBaseLayer() }, { items: [{ path: 'var/lib/dpkg/.wh.status', data: '' }] }]);
  await assert.rejects(inventoryFromLayers(layers), (e: unknown) => isHangarError(e) && e.code === 'NO_PACKAGE_DATA' && /scratch or static-binary/.test(e.message));
  inv = await inventoryFromLayers(layers, { allowEmpty: true });
  assert.equal(inv.packages.length, 0);
  assert.equal(inv.distro?.id, 'debian');
});

test('an image with no package data at all gives a clear message', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-empty');
  t.after(cleanup);
  const layers = await writeLayers(dir, [{ items: [{ path: 'app/server', data: Buffer.alloc(1000, 1) }, { path: 'etc/passwd', data: 'root:x:0:0::/:/bin/sh\n' }] }]);
  await assert.rejects(inventoryFromLayers(layers, { label: 'image demo@sha256:abc' }), (e: unknown) => {
    assert.ok(isHangarError(e));
    assert.equal(e.code, 'NO_PACKAGE_DATA');
    assert.match(e.message, /no package data found in image demo@sha256:abc: looked for dpkg, apk and rpm databases/);
    return true;
  });
});

test('Alpine: apk installed db, origin as source package, purls and ecosystem', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-apk');
  t.after(cleanup);
  const layers = await writeLayers(dir, [{ items: [{ path: 'etc/os-release', data: ALPINE_OS_RELEASE }, { path: 'lib/apk/db/installed', data: APK_INSTALLED }] }]);
  const inv = await inventoryFromLayers(layers);
  assert.deepEqual(summary(inv), [
    'pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1 Alpine:v3.19 /lib/apk/db/installed',
    'pkg:apk/alpine/libcrypto3@3.1.4-r1?arch=x86_64&distro=alpine-3.19.1 Alpine:v3.19 /lib/apk/db/installed',
    'pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1 Alpine:v3.19 /lib/apk/db/installed',
  ]);
  const crypto = inv.packages.find((p) => p.name === 'libcrypto3')!;
  assert.equal(crypto.sourceName, 'openssl');
  assert.equal(crypto.license, 'Apache-2.0');
});

test('malformed package databases: OS databases fail loudly, language metadata is skipped with a warning', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-malformed');
  t.after(cleanup);
  let layers = await writeLayers(dir, [{ items: debianBaseLayer('Package: a\nStatus: install ok installed\nVersion: 1\nthis line is garbage\n') }]);
  await assert.rejects(inventoryFromLayers(layers), (e: unknown) => {
    assert.ok(isHangarError(e));
    assert.equal(e.code, 'SBOM_MALFORMED_DB');
    assert.match(e.message, /\/var\/lib\/dpkg\/status is malformed at line 4/);
    return true;
  });
  layers = await writeLayers(dir, [{ items: debianBaseLayer('Package: nover\nStatus: install ok installed\n') }]);
  await assert.rejects(inventoryFromLayers(layers), /package nover has no Version field/);
  layers = await writeLayers(dir, [{ items: [{ path: 'etc/os-release', data: ALPINE_OS_RELEASE }, { path: 'lib/apk/db/installed', data: 'P:musl\nV:1.2.4-r4\n\nnot a field\n' }] }]);
  await assert.rejects(inventoryFromLayers(layers), /\/lib\/apk\/db\/installed is malformed at line 4/);
  layers = await writeLayers(dir, [
    {
      items: [
        ...npmAppLayer(),
        { path: 'app/node_modules/broken/package.json', data: '{"name": "broken", ' },
        { path: 'srv/package-lock.json', data: '[1,2]' },
        { path: 'usr/lib/python3/site-packages/bad-1.0.dist-info/METADATA', data: 'no headers here\n' },
      ],
    },
  ]);
  const inv = await inventoryFromLayers(layers);
  assert.ok(inv.packages.some((p) => p.name === 'lodash'));
  assert.equal(inv.warnings.length, 3);
  assert.match(inv.warnings.join('\n'), /app\/node_modules\/broken\/package.json: not valid JSON/);
  assert.match(inv.warnings.join('\n'), /srv\/package-lock.json: not a JSON object/);
  assert.match(inv.warnings.join('\n'), /bad-1.0.dist-info\/METADATA: not valid Python package metadata/);
});

test('npm lockfile v1 and v2, and lockfiles inside node_modules are ignored', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-npm');
  t.after(cleanup);
  const v1 = JSON.stringify({
    name: 'old',
    lockfileVersion: 1,
    dependencies: {
      '@types/node': { version: '20.1.0' },
      express: { version: '4.17.1', dependencies: { qs: { version: '6.7.0' } } },
      mocha: { version: '10.0.0', dev: true },
      mylib: { version: 'git+https://example.invalid/mylib.git#abc' },
    },
  });
  const v2 = JSON.stringify({ lockfileVersion: 2, packages: { '': {}, 'node_modules/aliased': { name: 'real-name', version: '1.0.0' } }, dependencies: { ignored: { version: '9.9.9' } } });
  const layers = await writeLayers(dir, [
    {
      items: [
        { path: 'a/package-lock.json', data: v1 },
        { path: 'b/package-lock.json', data: v2 },
        { path: 'b/node_modules/x/package-lock.json', data: v1.replace('4.17.1', '1.0.0') },
      ],
    },
  ]);
  const inv = await inventoryFromLayers(layers);
  assert.deepEqual(inv.packages.map((p) => p.purl), ['pkg:npm/%40types/node@20.1.0', 'pkg:npm/express@4.17.1', 'pkg:npm/qs@6.7.0', 'pkg:npm/real-name@1.0.0']);
});

test('a directory tree gives the same inventory as the layers it was unpacked from', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-dir');
  t.after(cleanup);
  const layers = await writeLayers(dir, [{ items: [...debianBaseLayer(), ...npmAppLayer(), ...pythonLayer()], compression: 'none' }]);
  const root = join(dir, 'rootfs');
  await mkdir(root);
  await run('tar', ['-xf', layers[0]!, '-C', root]);
  const fromTree = await inventoryFromDirectory(root);
  const fromLayers = await inventoryFromLayers(layers);
  assert.deepEqual(fromTree, fromLayers);
  assert.equal(fromTree.packages.length, 13);
  await assert.rejects(inventoryFromDirectory(join(dir, 'missing')), /is not a directory/);
});

test('reading layers releases their file descriptors, whatever the compression', async (t) => {
  const { readdirSync } = await import('node:fs');
  const { dir, cleanup } = await tempDir('sbom-fd');
  t.after(cleanup);
  for (const compression of ['gzip', 'zstd', 'none'] as const) {
    const layers = await writeLayers(dir, [{ items: debianBaseLayer(), compression }]);
    await inventoryFromLayers(layers);
    const before = readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 10; i++) await inventoryFromLayers(layers);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(readdirSync('/proc/self/fd').length <= before, `${compression}: descriptors leaked`);
  }
});
