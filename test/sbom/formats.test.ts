import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inventoryFromLayers, inventoryFromStore, renderSbom, parseSbomFormat, purl, normalisePypiName, SbomStore, CATALOG_VERSION, type Inventory } from '../../src/sbom/index.js';
import { blobStore, debianBaseLayer, npmAppLayer, pythonLayer, tempDir, writeLayers } from './fixtures.js';

async function sampleInventory(dir: string): Promise<Inventory> {
  const layers = await writeLayers(dir, [{ items: debianBaseLayer() }, { items: npmAppLayer() }, { items: pythonLayer() }]);
  return inventoryFromLayers(layers);
}

const fixed = { name: 'demo:v1', digest: 'sha256:' + 'a'.repeat(64), timestamp: new Date('2026-01-02T03:04:05.678Z'), uuid: '11111111-2222-4333-8444-555555555555' };

test('SPDX 2.3: required document and package fields, purl external refs, consistent relationships', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-spdx');
  t.after(cleanup);
  const inv = await sampleInventory(dir);
  const doc = renderSbom(inv, 'spdx', fixed) as Record<string, any>;
  assert.equal(doc.spdxVersion, 'SPDX-2.3');
  assert.equal(doc.dataLicense, 'CC0-1.0');
  assert.equal(doc.SPDXID, 'SPDXRef-DOCUMENT');
  assert.equal(doc.name, 'demo:v1');
  assert.match(doc.documentNamespace, /^https:\/\/[^#]+-11111111-2222-4333-8444-555555555555$/);
  assert.equal(doc.creationInfo.created, '2026-01-02T03:04:05Z');
  assert.match(doc.creationInfo.creators[0], /^Tool: hangar-/);
  const ids = new Set<string>();
  for (const p of doc.packages) {
    for (const k of ['name', 'SPDXID', 'downloadLocation']) assert.ok(p[k], `package field ${k}`);
    assert.match(p.SPDXID, /^SPDXRef-[A-Za-z0-9.-]+$/);
    assert.equal(p.filesAnalyzed, false);
    assert.ok(!ids.has(p.SPDXID), 'SPDXIDs are unique');
    ids.add(p.SPDXID);
  }
  assert.equal(doc.packages.length, inv.packages.length + 1);
  const purls = doc.packages.slice(1).map((p: any) => p.externalRefs[0].referenceLocator);
  assert.deepEqual(purls, inv.packages.map((p) => p.purl));
  for (const r of doc.relationships) {
    assert.ok(r.spdxElementId === 'SPDXRef-DOCUMENT' || ids.has(r.spdxElementId));
    assert.ok(ids.has(r.relatedSpdxElement));
  }
  assert.equal(doc.relationships.filter((r: any) => r.relationshipType === 'CONTAINS').length, inv.packages.length);
  const root = doc.packages[0];
  assert.deepEqual(root.checksums, [{ algorithm: 'SHA256', checksumValue: 'a'.repeat(64) }]);
  // Free-text licences are not SPDX expressions: NOASSERTION rather than an invalid document.
  const byName = (n: string) => doc.packages.find((p: any) => p.name === n);
  assert.equal(byName('lodash').licenseDeclared, 'MIT');
  assert.equal(byName('requests').licenseDeclared, 'NOASSERTION');
  assert.equal(byName('libssl3').supplier, 'Organization: Debian OpenSSL Team (pkg-openssl-devel@alioth-lists.debian.net)');
});

test('CycloneDX 1.5: required fields, scoped npm group, OS component, dependency graph', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-cdx');
  t.after(cleanup);
  const inv = await sampleInventory(dir);
  const doc = renderSbom(inv, parseSbomFormat('CycloneDX'), fixed) as Record<string, any>;
  assert.equal(doc.bomFormat, 'CycloneDX');
  assert.equal(doc.specVersion, '1.5');
  assert.match(doc.serialNumber, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(doc.version, 1);
  assert.equal(doc.metadata.timestamp, '2026-01-02T03:04:05Z');
  assert.equal(doc.metadata.component.type, 'container');
  const refs = new Set<string>();
  for (const c of doc.components) {
    assert.ok(['library', 'operating-system'].includes(c.type));
    assert.ok(c.name);
    assert.ok(!refs.has(c['bom-ref']));
    refs.add(c['bom-ref']);
  }
  assert.deepEqual(doc.components[0], { type: 'operating-system', 'bom-ref': 'os:debian', name: 'debian', version: '12', description: 'Debian GNU/Linux 12 (bookworm)' });
  const traverse = doc.components.find((c: any) => c.purl === 'pkg:npm/%40babel/traverse@7.22.0');
  assert.equal(traverse.group, '@babel');
  assert.equal(traverse.name, 'traverse');
  assert.deepEqual(new Set(doc.dependencies[0].dependsOn), refs);
  const ssl = doc.components.find((c: any) => c.name === 'libssl3');
  assert.deepEqual(ssl.properties.find((p: any) => p.name === 'hangar:source-package'), { name: 'hangar:source-package', value: 'openssl 3.0.11-1~deb12u1' });
  assert.throws(() => parseSbomFormat('xml'), /use spdx or cyclonedx/);
});

test('output is deterministic apart from timestamp and uuid', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-det');
  t.after(cleanup);
  const a = await sampleInventory(join(dir));
  await mkdir(join(dir, 'b'));
  // Same content, layers split differently: the package order must not depend on it.
  const layers = await writeLayers(join(dir, 'b'), [{ items: [...pythonLayer(), ...npmAppLayer()] }, { items: debianBaseLayer() }]);
  const b = await inventoryFromLayers(layers);
  for (const f of ['spdx', 'cyclonedx'] as const) {
    assert.equal(JSON.stringify(renderSbom(a, f, fixed)), JSON.stringify(renderSbom(b, f, fixed)));
    const x = JSON.stringify(renderSbom(a, f, { name: 'demo:v1' }));
    const y = JSON.stringify(renderSbom(a, f, { name: 'demo:v1' }));
    assert.notEqual(x, y, 'namespace/serial differ between runs');
  }
});

test('purl encoding and PEP 503 names', () => {
  assert.equal(purl('deb', 'debian', 'libc6', '2.36-9+deb12u4', { distro: 'debian-12', arch: 'amd64' }), 'pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12');
  assert.equal(purl('npm', '@scope', 'pkg', '1.0.0-beta.1'), 'pkg:npm/%40scope/pkg@1.0.0-beta.1');
  assert.equal(normalisePypiName('Zope.Interface__Extra--x'), 'zope-interface-extra-x');
});

test('inventoryFromStore: index → platform manifest → layers, cached per digest', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-store');
  t.after(cleanup);
  const { store, put, tags } = await blobStore(dir);
  const layerFiles = await writeLayers(dir, [{ items: debianBaseLayer() }, { items: npmAppLayer(), compression: 'zstd' }]);
  const layers = [];
  for (const [i, f] of layerFiles.entries()) {
    const data = await readFile(f);
    layers.push({ mediaType: i ? 'application/vnd.oci.image.layer.v1.tar+zstd' : 'application/vnd.oci.image.layer.v1.tar+gzip', digest: await put(data), size: data.length });
  }
  const config = await put('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 1 }, layers });
  const mdigest = await put(manifest);
  const armManifest = await put(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { digest: config }, layers: [] }));
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: armManifest, size: 1, platform: { os: 'linux', architecture: 'arm64' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: mdigest, size: 1, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  });
  tags.set('demo:v1', { digest: await put(index), mediaType: 'application/vnd.oci.image.index.v1+json' });

  const cache = new SbomStore(join(dir, 'data'));
  const first = await inventoryFromStore(store, 'demo', 'v1', { cache });
  assert.equal(first.digest, mdigest);
  assert.equal(first.cached, false);
  assert.ok(first.inventory.packages.some((p) => p.name === 'lodash') && first.inventory.packages.some((p) => p.name === 'libssl3'));
  const t0 = process.hrtime.bigint();
  const second = await inventoryFromStore(store, 'demo', 'v1', { cache });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  assert.equal(second.cached, true);
  assert.deepEqual(second.inventory, first.inventory);
  assert.ok(ms < 200, `cached call took ${ms} ms`);
  assert.deepEqual(await readdir(join(dir, 'data', 'sbom')), [`sha256-${mdigest.slice(7)}.json`], 'one file per digest, no temp files left');

  await assert.rejects(inventoryFromStore(store, 'demo', 'v1', { platform: { os: 'linux', architecture: 's390x' } }), /has no linux\/s390x variant \(it has: linux\/arm64, linux\/amd64\)/);
  await assert.rejects(inventoryFromStore(store, 'demo', 'nope'), /image demo:nope is not in the registry/);
  assert.throws(() => cache.get('../../etc/passwd'), /is not an image digest/);
});

test('SbomStore: concurrent callers compute once; damaged entries are recomputed', async (t) => {
  const { dir, cleanup } = await tempDir('sbom-cache');
  t.after(cleanup);
  const cache = new SbomStore(dir);
  const digest = 'sha256:' + 'b'.repeat(64);
  let calls = 0;
  const compute = async (): Promise<Inventory> => {
    calls++;
    await new Promise((r) => setTimeout(r, 30));
    return { schema: 1, packages: [], warnings: [] };
  };
  const [a, b] = await Promise.all([cache.getOrCompute(digest, compute), cache.getOrCompute(digest, compute)]);
  assert.equal(calls, 1);
  assert.deepEqual(a.inventory, b.inventory);
  await writeFile(join(dir, 'sbom', `sha256-${'b'.repeat(64)}.json`), '{"trunc');
  assert.equal(cache.get(digest), undefined);
  const c = await cache.getOrCompute(digest, compute);
  assert.equal(c.cached, false);
  assert.equal(calls, 2);
  // An entry written by older catalogers is recomputed too.
  const file = join(dir, 'sbom', `sha256-${'b'.repeat(64)}.json`);
  const entry = JSON.parse(await readFile(file, 'utf8'));
  assert.equal(entry.catalog, CATALOG_VERSION);
  await writeFile(file, JSON.stringify({ ...entry, catalog: CATALOG_VERSION - 1 }));
  assert.equal(cache.get(digest), undefined);
});
