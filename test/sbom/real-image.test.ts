/**
 * An image built by a real image tool (umoci): three tags whose layers come
 * from real diffs, with the whiteouts umoci writes for deleted files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LocalImageStore } from '../../src/shared/image-store.js';
import { run } from '../../src/shared/process.js';
import { inventoryFromStore, SbomStore } from '../../src/sbom/index.js';
import { importOsv, scanImage, VulnDb } from '../../src/vulns/index.js';
import { DEBIAN_OS_RELEASE, NEW_DPKG_STATUS, NPM_LOCK_V3, OLD_DPKG_STATUS, tempDir } from './fixtures.js';
import { writeOsvDir } from '../vulns/osv-fixture.js';

/** LocalImageStore over an OCI image layout directory (tags from index.json ref names). */
async function layoutStore(layout: string): Promise<LocalImageStore> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; mediaType: string; annotations?: Record<string, string> }> };
  return {
    resolveManifest(_repo, ref) {
      const m = index.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === ref || x.digest === ref);
      return m && { digest: m.digest, mediaType: m.mediaType };
    },
    blobPath: (d) => (/^sha256:[a-f0-9]{64}$/.test(d) ? join(layout, 'blobs', 'sha256', d.slice(7)) : undefined),
  };
}

test('umoci-built image: layer diffs and real whiteouts across three tags', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-umoci');
  t.after(cleanup);
  const layout = join(dir, 'layout');
  const umoci = (...args: string[]) => run('umoci', args, { cwd: dir });
  await umoci('init', '--layout', layout);
  await umoci('new', '--image', `${layout}:base`);

  // v1: Debian base with an old openssl and an npm app.
  await umoci('unpack', '--image', `${layout}:base`, 'b1');
  const r1 = join(dir, 'b1', 'rootfs');
  await mkdir(join(r1, 'var/lib/dpkg'), { recursive: true });
  await mkdir(join(r1, 'etc'), { recursive: true });
  await mkdir(join(r1, 'app/node_modules/lodash'), { recursive: true });
  await writeFile(join(r1, 'etc/os-release'), DEBIAN_OS_RELEASE);
  await writeFile(join(r1, 'var/lib/dpkg/status'), OLD_DPKG_STATUS);
  await writeFile(join(r1, 'app/package-lock.json'), NPM_LOCK_V3);
  await writeFile(join(r1, 'app/node_modules/lodash/package.json'), JSON.stringify({ name: 'lodash', version: '4.17.20' }));
  await umoci('repack', '--image', `${layout}:v1`, 'b1');

  // v2 = v1 + a layer that upgrades openssl and removes node_modules/lodash.
  await umoci('unpack', '--image', `${layout}:v1`, 'b2');
  const r2 = join(dir, 'b2', 'rootfs');
  await writeFile(join(r2, 'var/lib/dpkg/status'), NEW_DPKG_STATUS);
  await rm(join(r2, 'app/node_modules/lodash'), { recursive: true });
  await umoci('repack', '--image', `${layout}:v2`, 'b2');

  // v3 = v2 + a layer that deletes the dpkg database.
  await umoci('unpack', '--image', `${layout}:v2`, 'b3');
  await rm(join(dir, 'b3', 'rootfs', 'var/lib/dpkg/status'));
  await umoci('repack', '--image', `${layout}:v3`, 'b3');

  const store = await layoutStore(layout);
  const cache = new SbomStore(join(dir, 'data'));
  const inv = async (tag: string) => (await inventoryFromStore(store, 'app', tag, { cache })).inventory;
  const v1 = await inv('v1');
  const v2 = await inv('v2');
  const v3 = await inv('v3');
  const ver = (i: typeof v1, name: string) => i.packages.find((p) => p.name === name)?.version;
  assert.equal(ver(v1, 'openssl'), '3.0.11-1~deb12u1');
  assert.equal(ver(v2, 'openssl'), '3.0.15-1~deb12u1');
  assert.equal(ver(v2, 'curl'), '7.88.1-10+deb12u5');
  assert.deepEqual(v1.packages.find((p) => p.name === 'lodash')?.locations, ['/app/node_modules/lodash/package.json', '/app/package-lock.json']);
  assert.deepEqual(v2.packages.find((p) => p.name === 'lodash')?.locations, ['/app/package-lock.json'], 'the whiteout removed node_modules/lodash');
  assert.equal(v3.packages.filter((p) => p.type === 'deb').length, 0, 'the whiteout removed the dpkg status');
  assert.equal(v3.distro?.id, 'debian');

  // Scanning: the upgrade fixes the openssl advisories; v3 has no OS packages left to match.
  await importOsv(join(dir, 'osv.sqlite'), await writeOsvDir(join(dir, 'osv')));
  const db = VulnDb.open(join(dir, 'osv.sqlite'));
  t.after(async () => db.close());
  const ids = async (tag: string) => (await scanImage(store, 'app', tag, db, { cache })).findings.filter((f) => f.package === 'openssl').map((f) => f.id);
  assert.deepEqual(await ids('v1'), ['DEBIAN-CVE-2099-0001', 'DEBIAN-CVE-2023-5678', 'DEBIAN-CVE-2099-0005']);
  assert.deepEqual(await ids('v2'), []);
  assert.deepEqual(await ids('v3'), []);
});
