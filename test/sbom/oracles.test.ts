/** Cross-checks of the catalogers against the real tools that own those databases (dpkg, rpm). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/shared/process.js';
import { inventoryFromDirectory, inventoryFromLayers } from '../../src/sbom/index.js';
import { tempDir, writeLayers } from './fixtures.js';

test("this host's dpkg database: same installed packages and versions as dpkg-query", async (t) => {
  const { dir, cleanup } = await tempDir('sbom-host');
  t.after(cleanup);
  await mkdir(join(dir, 'var/lib/dpkg'), { recursive: true });
  await mkdir(join(dir, 'etc'));
  await copyFile('/var/lib/dpkg/status', join(dir, 'var/lib/dpkg/status'));
  await copyFile('/etc/os-release', join(dir, 'etc/os-release'));
  const inv = await inventoryFromDirectory(dir);
  const q = await run('dpkg-query', ['-W', '-f', '${db:Status-Status} ${Package} ${Version} ${Architecture}\n']);
  const expected = q.stdout
    .split('\n')
    .filter((l) => l.startsWith('installed '))
    .map((l) => l.slice('installed '.length))
    .sort();
  const got = inv.packages.filter((p) => p.type === 'deb').map((p) => `${p.name} ${p.version} ${p.arch}`).sort();
  assert.ok(expected.length > 50, 'the host should have a real package set');
  assert.deepEqual(got, expected);
  const all = (await run('dpkg-query', ['-W'])).stdout.split('\n').filter(Boolean).length;
  const notInstalled = q.stdout.split('\n').filter((l) => l && !l.startsWith('installed ')).length;
  assert.equal(got.length, all - notInstalled);
  assert.ok(inv.packages.every((p) => p.ecosystem === 'Debian:12' || !p.ecosystem?.startsWith('Debian')));
});

const spec = (name: string, version: string, release: string, epoch: string | undefined, arch: string) => `Name: ${name}
Version: ${version}
Release: ${release}
${epoch ? `Epoch: ${epoch}\n` : ''}Summary: ${name} test package
License: MIT
URL: https://example.invalid/${name}
BuildArch: ${arch}
%description
test
%files
`;

test('rpm sqlite database built by the real rpm: same packages as rpm -qa', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-rpm');
  t.after(cleanup);
  const top = join(dir, 'top');
  const root = join(dir, 'root');
  await mkdir(root);
  const pkgs = [spec('hello-hangar', '1.2.3', '4.el9', '2', 'noarch'), spec('openssl-libs', '3.0.7', '24.el9', '1', 'x86_64'), spec('tzdata', '2024a', '1.el9', undefined, 'noarch')];
  for (const [i, s] of pkgs.entries()) {
    await writeFile(join(dir, `p${i}.spec`), s);
    await run('rpmbuild', ['--quiet', '-bb', '--define', `_topdir ${top}`, join(dir, `p${i}.spec`)]);
  }
  const rpms: string[] = [];
  for (const sub of await readdir(join(top, 'RPMS'))) for (const f of await readdir(join(top, 'RPMS', sub))) rpms.push(join(top, 'RPMS', sub, f));
  const db = ['--root', root, '--define', '_dbpath /var/lib/rpm'];
  await run('rpm', [...db, '--initdb']);
  await run('rpm', [...db, '-i', '--nodeps', '--justdb', '--ignorearch', ...rpms]);
  const sqlite = join(root, 'var/lib/rpm/rpmdb.sqlite');
  assert.ok(existsSync(sqlite), 'rpm should use the sqlite backend');
  const q = await run('rpm', [...db, '-qa', '--qf', '%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE} %{ARCH} %{LICENSE}\n']);
  const expected = q.stdout.split('\n').filter(Boolean).sort();
  const layers = await writeLayers(dir, [
    {
      items: [
        { path: 'etc/os-release', data: 'ID="rocky"\nVERSION_ID="9.3"\nPRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"\n' },
        { path: 'var/lib/rpm/rpmdb.sqlite', data: await readFile(sqlite) },
      ],
    },
  ]);
  const inv = await inventoryFromLayers(layers);
  assert.deepEqual(inv.packages.map((p) => `${p.name} ${p.version} ${p.arch} ${p.license}`).sort(), expected);
  const ssl = inv.packages.find((p) => p.name === 'openssl-libs')!;
  assert.equal(ssl.purl, 'pkg:rpm/rocky/openssl-libs@3.0.7-24.el9?arch=x86_64&distro=rocky-9.3&epoch=1');
  assert.equal(ssl.ecosystem, 'Rocky Linux:9');
  assert.equal(ssl.sourceName, 'openssl-libs');
  assert.equal(ssl.homepage, 'https://example.invalid/openssl-libs');

  const broken = await writeLayers(join(dir), [{ items: [{ path: 'etc/os-release', data: 'ID=rocky\n' }, { path: 'var/lib/rpm/rpmdb.sqlite', data: 'SQLite format 3\0 but not really' }] }]);
  await assert.rejects(inventoryFromLayers(broken), /rpm database \/var\/lib\/rpm\/rpmdb.sqlite cannot be read/);
});

test("Python cataloger agrees with importlib.metadata on this host's dist-packages", async (t) => {
  const site = '/usr/lib/python3/dist-packages';
  const { dir, cleanup } = await tempDir('sbom-py');
  t.after(cleanup);
  // Copy only the metadata (the walk must not depend on the rest of the host).
  const target = join(dir, 'usr/lib/python3/dist-packages');
  await mkdir(target, { recursive: true });
  await run('sh', ['-c', 'cd "$1" && find . -maxdepth 2 \\( -path "*.dist-info/METADATA" -o -path "*.egg-info/PKG-INFO" -o \\( -name "*.egg-info" -type f \\) \\) -print0 | xargs -0 -r cp --parents -t "$2"', 'sh', site, target]);
  const py = `import importlib.metadata as m, json, sys
print(json.dumps(sorted(d.metadata["Name"] + " " + d.version for d in m.distributions(path=[sys.argv[1]]))))`;
  const expected = JSON.parse((await run('/usr/bin/python3', ['-c', py, site])).stdout) as string[];
  assert.ok(expected.length > 0, 'python3-packaging (installed by scripts/setup.sh) puts at least one distribution there');
  const inv = await inventoryFromDirectory(dir);
  // Two metadata directories for one distribution (seen here for cryptography) are one package to us.
  assert.deepEqual(inv.packages.map((p) => `${p.name} ${p.version}`).sort(), [...new Set(expected)].sort());
  assert.ok(inv.packages.every((p) => p.purl === `pkg:pypi/${p.name.toLowerCase().replace(/[-_.]+/g, '-')}@${p.version}`));
});

test("npm cataloger agrees with npm's own hidden lockfile for this repository's node_modules", async (t) => {
  const repo = join(new URL('.', import.meta.url).pathname, '../../..');
  const lock = JSON.parse(await readFile(join(repo, 'node_modules/.package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; name?: string; link?: boolean }> };
  const expected = Object.entries(lock.packages)
    .filter(([k, v]) => k.startsWith('node_modules/') && !v.link && v.version)
    .map(([k, v]) => `${v.name ?? k.slice(k.lastIndexOf('node_modules/') + 13)} ${v.version}`);
  const { dir, cleanup } = await tempDir('sbom-nm');
  t.after(cleanup);
  await run('sh', ['-c', 'cd "$1" && find node_modules -name package.json -print0 | xargs -0 -r cp --parents -t "$2"', 'sh', repo, dir]);
  const inv = await inventoryFromDirectory(dir);
  assert.deepEqual([...new Set(inv.packages.map((p) => `${p.name} ${p.version}`))].sort(), [...new Set(expected)].sort());
});
