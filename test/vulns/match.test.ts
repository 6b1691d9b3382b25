import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { inventoryFromLayers } from '../../src/sbom/index.js';
import { inventoryFromSbomDocument, parsePurl, renderSbom, SbomStore } from '../../src/sbom/index.js';
import { exceedsFailOn, formatFindings, importOsv, matchInventory, scanImage, vulnDbPath, VulnDb, countBySeverity, type Finding } from '../../src/vulns/index.js';
import { isHangarError } from '../../src/shared/errors.js';
import { ALPINE_OS_RELEASE, APK_INSTALLED, blobStore, pushImage, debianBaseLayer, npmAppLayer, pythonLayer, tempDir, writeLayers } from '../sbom/fixtures.js';
import { RECORDS, writeOsvDir } from './osv-fixture.js';

// Findings sort by severity, then package name in code-point order (upper case first).
const line = (f: Finding) => `${f.id} ${f.package}${f.sourcePackage ? `(${f.sourcePackage})` : ''} ${f.installedVersion} -> ${f.fixedVersion ?? 'none'} ${f.severity}`;

async function setup(t: { after: (fn: () => Promise<void>) => void }) {
  const { dir, cleanup } = await tempDir('vulns-match');
  t.after(cleanup);
  const db = VulnDb.open(join(dir, 'data', 'vulndb.sqlite'));
  t.after(async () => db.close());
  const r = await importOsv(db, await writeOsvDir(join(dir, 'osv')));
  assert.equal(r.records, RECORDS.length - 1);
  assert.equal(r.withdrawn, 1);
  return { dir, db };
}

test('Debian image with an old openssl, an npm app and Python packages: every expected finding, no false positive', async (t) => {
  const { dir, db } = await setup(t);
  const layers = await writeLayers(dir, [{ items: debianBaseLayer() }, { items: npmAppLayer(), compression: 'zstd' }, { items: pythonLayer() }]);
  const inv = await inventoryFromLayers(layers);
  const res = matchInventory(db, inv);
  assert.deepEqual(res.findings.map(line), [
    'GHSA-67hx-6x53-jw92 @babel/traverse 7.22.0 -> 7.23.2 CRITICAL',
    'PYSEC-2021-142 PyYAML 5.3.1 -> 5.4 CRITICAL',
    'GHSA-xvch-5gv4-984h minimist 1.2.5 -> 1.2.6 CRITICAL',
    'DEBIAN-CVE-2099-0004 bash 5.2.15-2+b2 -> none HIGH',
    'DEBIAN-CVE-2099-0001 libssl3(openssl) 3.0.11-1~deb12u1 -> 3.0.11-1 HIGH',
    'GHSA-35jh-r3h4-6jhm lodash 4.17.20 -> 4.17.21 HIGH',
    'DEBIAN-CVE-2099-0001 openssl 3.0.11-1~deb12u1 -> 3.0.11-1 HIGH',
    'GHSA-2099-vers-list debug 2.6.9 -> none MEDIUM',
    'DEBIAN-CVE-2023-5678 libssl3(openssl) 3.0.11-1~deb12u1 -> 3.0.13-1~deb12u1 MEDIUM',
    'DEBIAN-CVE-2023-5678 openssl 3.0.11-1~deb12u1 -> 3.0.13-1~deb12u1 MEDIUM',
    'DEBIAN-CVE-2099-0005 libssl3(openssl) 3.0.11-1~deb12u1 -> 3.0.12-1 UNKNOWN',
    'DEBIAN-CVE-2099-0005 openssl 3.0.11-1~deb12u1 -> 3.0.12-1 UNKNOWN',
    'PYSEC-2023-74 requests 2.25.0 -> 2.31.0 UNKNOWN',
    'DEBIAN-CVE-2099-0006 tzdata 2024a-0+deb12u1 -> none UNKNOWN',
    'DEBIAN-CVE-2099-0003 zlib1g(zlib) 1:1.2.13.dfsg-1 -> 1:1.3.dfsg-3 UNKNOWN',
  ]);
  assert.deepEqual(res.warnings, []);
  const babel = res.findings[0]!;
  assert.equal(babel.score, 7.8, 'the CVSS score is kept even when the GHSA label decides the level');
  assert.deepEqual(babel.aliases, ['CVE-2023-45133']);
  assert.equal(babel.purl, 'pkg:npm/%40babel/traverse@7.22.0');
  assert.equal(babel.ecosystem, 'npm');
  const dsa = res.findings.find((f) => f.id === 'DEBIAN-CVE-2023-5678')!;
  assert.equal(dsa.score, 5.3, 'rating borrowed from the upstream CVE record');
  assert.deepEqual(dsa.aliases, ['CVE-2023-5678']);
  assert.deepEqual(dsa.locations, ['/var/lib/dpkg/status']);

  // Minimum severity filter and the CI exit-code helper.
  const high = matchInventory(db, inv, { minSeverity: 'high' }).findings;
  assert.equal(high.length, 7);
  assert.ok(high.every((f) => f.severity === 'HIGH' || f.severity === 'CRITICAL'));
  assert.equal(exceedsFailOn(res.findings, 'CRITICAL'), true);
  assert.equal(exceedsFailOn(high.filter((f) => f.severity !== 'CRITICAL'), 'critical'), false);
  assert.equal(exceedsFailOn([], 'low'), false);
  assert.throws(() => exceedsFailOn(res.findings, 'severe'), (e: unknown) => isHangarError(e) && /use one of UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL/.test(e.message));
  assert.deepEqual(countBySeverity(res.findings), { UNKNOWN: 5, LOW: 0, MEDIUM: 3, HIGH: 4, CRITICAL: 3 });
});

test('the same image after upgrading openssl: the fixed advisories disappear', async (t) => {
  const { dir, db } = await setup(t);
  const upgraded = (await import('../sbom/fixtures.js')).OLD_DPKG_STATUS.replaceAll('3.0.11-1~deb12u1', '3.0.13-1~deb12u1');
  const inv = await inventoryFromLayers(await writeLayers(dir, [{ items: debianBaseLayer() }, { items: [{ path: 'var/lib/dpkg/status', data: upgraded }] }]));
  const ids = matchInventory(db, inv).findings.filter((f) => f.package === 'openssl').map((f) => `${f.id} ${f.fixedVersion}`);
  assert.deepEqual(ids, ['DEBIAN-CVE-2099-0005 3.0.14-1'], 'only the range fixed above 3.0.13 remains');
});

test('Alpine image: origin package names, apk ordering, other releases ignored', async (t) => {
  const { dir, db } = await setup(t);
  const inv = await inventoryFromLayers(await writeLayers(dir, [{ items: [{ path: 'etc/os-release', data: ALPINE_OS_RELEASE }, { path: 'lib/apk/db/installed', data: APK_INSTALLED }] }]));
  assert.deepEqual(matchInventory(db, inv).findings.map(line), [
    'ALPINE-CVE-2099-0001 libcrypto3(openssl) 3.1.4-r1 -> 3.1.4-r5 UNKNOWN',
    'ALPINE-CVE-2099-0003 musl 1.2.4_git20230717-r4 -> 1.2.4_git20230717-r5 UNKNOWN',
  ]);
});

test('packages whose ecosystem has no data loaded are reported as unchecked, not as clean', async (t) => {
  const { dir, cleanup } = await tempDir('vulns-missing');
  t.after(cleanup);
  const db = VulnDb.open(join(dir, 'db.sqlite'));
  t.after(async () => db.close());
  await importOsv(db, await writeOsvDir(join(dir, 'osv'), RECORDS.filter((r) => String(r.id).startsWith('GHSA'))));
  const inv = await inventoryFromLayers(await writeLayers(dir, [{ items: debianBaseLayer() }, { items: npmAppLayer() }]));
  const res = matchInventory(db, inv);
  assert.ok(res.findings.every((f) => f.ecosystem === 'npm'));
  assert.ok(res.findings.length > 0);
  assert.deepEqual(res.warnings, ['the vulnerability database has no Debian:12 advisories; load them with "hangar vulndb update" (OSV export for Debian) — those packages were not checked']);
  // An image without os-release: OS packages cannot be matched, and the result says so.
  const bare = await inventoryFromLayers(await writeLayers(dir, [{ items: debianBaseLayer().filter((i) => !i.path.includes('os-release')) }]));
  assert.match(bare.warnings[0]!, /no \/etc\/os-release in the image/);
  assert.match(matchInventory(db, bare).warnings[0]!, /5 package\(s\) have no known OSV ecosystem/);
});

test('scanImage: an image in the registry store, scanned twice (second inventory from the cache), and the text report', async (t) => {
  const { dir, cleanup } = await tempDir('vulns-scan');
  t.after(cleanup);
  const dataDir = join(dir, 'data');
  await importOsv(vulnDbPath(dataDir), await writeOsvDir(join(dir, 'osv')));
  const db = VulnDb.open(vulnDbPath(dataDir));
  t.after(async () => db.close());
  const s = await blobStore(dir);
  const digest = await pushImage(s, 'demo', 'deployment-1', await writeLayers(dir, [{ items: debianBaseLayer() }, { items: npmAppLayer() }]));
  const cache = new SbomStore(dataDir);
  const first = await scanImage(s.store, 'demo', 'deployment-1', db, { cache, minSeverity: 'HIGH' });
  assert.equal(first.digest, digest);
  assert.equal(first.cachedInventory, false);
  assert.equal(first.packages, 11);
  assert.deepEqual(first.findings.map((f) => `${f.id} ${f.package}`), [
    'GHSA-67hx-6x53-jw92 @babel/traverse',
    'GHSA-xvch-5gv4-984h minimist',
    'DEBIAN-CVE-2099-0004 bash',
    'DEBIAN-CVE-2099-0001 libssl3',
    'GHSA-35jh-r3h4-6jhm lodash',
    'DEBIAN-CVE-2099-0001 openssl',
  ]);
  const second = await scanImage(s.store, 'demo', digest, db, { cache, minSeverity: 'HIGH' });
  assert.equal(second.cachedInventory, true);
  assert.deepEqual(second.findings, first.findings);

  const text = formatFindings(first);
  const lines = text.split('\n');
  assert.match(lines[0]!, /^SEVERITY\s+ID\s+PACKAGE\s+INSTALLED\s+FIXED\s+SUMMARY$/);
  assert.match(text, /HIGH\s+DEBIAN-CVE-2099-0001\s+libssl3 \(openssl\)\s+3\.0\.11-1~deb12u1\s+3\.0\.11-1\s+openssl: fixed in 3\.0\.11-1/);
  assert.match(text, /HIGH\s+DEBIAN-CVE-2099-0004\s+bash\s+5\.2\.15-2\+b2\s+\(none\)/);
  assert.match(text, /Total: 6 \(CRITICAL: 2, HIGH: 4, MEDIUM: 0, LOW: 0, UNKNOWN: 0\)/);
  assert.equal(formatFindings({ findings: [], warnings: ['w1'] }), 'No known vulnerabilities found.\n\nTotal: 0 (CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0, UNKNOWN: 0)\nwarning: w1\n');
});

test('matching an SBOM document: Hangar CycloneDX/SPDX round trip, Syft and Trivy purl conventions', async (t) => {
  const { dir, db } = await setup(t);
  const inv = await inventoryFromLayers(await writeLayers(dir, [{ items: debianBaseLayer() }, { items: npmAppLayer() }, { items: pythonLayer() }]));
  const direct = matchInventory(db, inv).findings.map(line);
  for (const format of ['cyclonedx', 'spdx'] as const) {
    const doc = JSON.parse(JSON.stringify(renderSbom(inv, format, { name: 'demo' })));
    const back = inventoryFromSbomDocument(doc);
    assert.equal(back.packages.length, inv.packages.length, format);
    assert.deepEqual(matchInventory(db, back).findings.map(line), direct, format);
  }
  const syft = {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    components: [
      { type: 'library', name: 'libssl3', purl: 'pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&upstream=openssl&distro=debian-12' },
      { type: 'library', name: 'libcrypto3', purl: 'pkg:apk/alpine/libcrypto3@3.1.4-r1?arch=x86_64&distro=3.19.1', properties: [{ name: 'aquasecurity:trivy:SrcName', value: 'openssl' }] },
      { type: 'library', name: 'PyYAML', purl: 'pkg:pypi/pyyaml@5.3.1' },
      { type: 'library', name: 'thing', purl: 'pkg:golang/example.com/thing@v1.0.0' },
    ],
  };
  const other = inventoryFromSbomDocument(syft);
  assert.deepEqual(other.warnings, ['1 component(s) have no purl of a supported type (deb, apk, rpm, npm, pypi) and were skipped']);
  assert.deepEqual(matchInventory(db, other).findings.map((f) => `${f.id} ${f.package}`).sort(), [
    'ALPINE-CVE-2099-0001 libcrypto3',
    'DEBIAN-CVE-2023-5678 libssl3',
    'DEBIAN-CVE-2099-0001 libssl3',
    'DEBIAN-CVE-2099-0005 libssl3',
    'PYSEC-2021-142 PyYAML',
  ]);
  assert.deepEqual(parsePurl('pkg:npm/%40babel/traverse@7.22.0?a=1#x'), { type: 'npm', namespace: '@babel', name: 'traverse', version: '7.22.0', qualifiers: { a: '1' } });
  assert.throws(() => inventoryFromSbomDocument({ hello: 1 }), /unrecognised SBOM/);
  assert.throws(() => inventoryFromSbomDocument({ bomFormat: 'CycloneDX', components: [] }), (e: unknown) => isHangarError(e) && e.code === 'NO_PACKAGE_DATA');
});

test('Ubuntu (":LTS" ecosystems, Ubuntu priority) and Rocky Linux (rpm EVR with epochs)', async (t) => {
  const { dir, cleanup } = await tempDir('vulns-distros');
  t.after(cleanup);
  const db = VulnDb.open(join(dir, 'db.sqlite'));
  t.after(async () => db.close());
  const rec = (id: string, ecosystem: string, name: string, events: Array<Record<string, string>>, extra: Record<string, unknown> = {}) => ({
    id,
    modified: '2024-01-01T00:00:00Z',
    summary: id,
    affected: [{ package: { ecosystem, name }, ranges: [{ type: 'ECOSYSTEM', events }] }],
    ...extra,
  });
  await importOsv(
    db,
    await writeOsvDir(join(dir, 'osv'), [
      rec('UBUNTU-CVE-2099-0001', 'Ubuntu:22.04:LTS', 'openssl', [{ introduced: '0' }, { fixed: '3.0.2-0ubuntu1.15' }], { severity: [{ type: 'Ubuntu', score: 'high' }] }),
      rec('UBUNTU-CVE-2099-0002', 'Ubuntu:22.04:LTS', 'openssl', [{ introduced: '0' }, { fixed: '3.0.2-0ubuntu1.10' }]),
      rec('RLSA-2099:0001', 'Rocky Linux:9', 'openssl', [{ introduced: '0' }, { fixed: '1:3.0.7-25.el9_3' }]),
      rec('RLSA-2099:0002', 'Rocky Linux:9', 'openssl', [{ introduced: '0' }, { fixed: '3.0.9-1.el9' }], { database_specific: { severity: 'Important' } }),
    ]),
  );
  const pkg = (type: 'deb' | 'rpm', name: string, version: string, ecosystem: string, sourceName: string) => ({ type, name, version, sourceName, sourceVersion: version, ecosystem, purl: `pkg:${type}/x/${name}@${version}`, locations: [] });
  const ubuntu = { schema: 1 as const, packages: [pkg('deb', 'libssl3', '3.0.2-0ubuntu1.12', 'Ubuntu:22.04', 'openssl')], warnings: [] };
  assert.deepEqual(matchInventory(db, ubuntu).findings.map(line), ['UBUNTU-CVE-2099-0001 libssl3(openssl) 3.0.2-0ubuntu1.12 -> 3.0.2-0ubuntu1.15 HIGH']);
  const rocky = { schema: 1 as const, packages: [pkg('rpm', 'openssl-libs', '1:3.0.7-24.el9', 'Rocky Linux:9', 'openssl')], warnings: [] };
  // 3.0.9-1.el9 has epoch 0, below the installed epoch 1: not affected.
  assert.deepEqual(matchInventory(db, rocky).findings.map(line), ['RLSA-2099:0001 openssl-libs(openssl) 1:3.0.7-24.el9 -> 1:3.0.7-25.el9_3 UNKNOWN']);
});
