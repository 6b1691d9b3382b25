/**
 * `hangar registry sbom|vulns` and `hangar vulndb` end to end: a real daemon,
 * images pushed with skopeo, the real CLI as a child process.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { hangar } from '../helpers/cli.js';
import { pushBusybox } from '../helpers/machines.js';
import { debianBaseLayer, npmAppLayer } from '../sbom/fixtures.js';
import { RECORDS, writeOsvDir } from '../vulns/osv-fixture.js';
import { parsePurl } from '../../src/sbom/index.js';
import { Releases } from '../../src/deploy/index.js';
import { pushLayers } from './helpers.js';

interface Finding {
  id: string;
  package: string;
  sourcePackage?: string;
  installedVersion: string;
  fixedVersion: string | null;
  severity: string;
  purl: string;
}

// Findings sort by severity, then package name in code-point order.
const line = (f: Finding) => `${f.id} ${f.package}${f.sourcePackage ? `(${f.sourcePackage})` : ''} ${f.installedVersion} -> ${f.fixedVersion ?? 'none'} ${f.severity}`;

/** The Debian layer (old openssl, unfixed bash...) on its own: HIGH at most. */
const BASE_FINDINGS = [
  'DEBIAN-CVE-2099-0004 bash 5.2.15-2+b2 -> none HIGH',
  'DEBIAN-CVE-2099-0001 libssl3(openssl) 3.0.11-1~deb12u1 -> 3.0.11-1 HIGH',
  'DEBIAN-CVE-2099-0001 openssl 3.0.11-1~deb12u1 -> 3.0.11-1 HIGH',
  'DEBIAN-CVE-2023-5678 libssl3(openssl) 3.0.11-1~deb12u1 -> 3.0.13-1~deb12u1 MEDIUM',
  'DEBIAN-CVE-2023-5678 openssl 3.0.11-1~deb12u1 -> 3.0.13-1~deb12u1 MEDIUM',
  'DEBIAN-CVE-2099-0005 libssl3(openssl) 3.0.11-1~deb12u1 -> 3.0.12-1 UNKNOWN',
  'DEBIAN-CVE-2099-0005 openssl 3.0.11-1~deb12u1 -> 3.0.12-1 UNKNOWN',
  'DEBIAN-CVE-2099-0006 tzdata 2024a-0+deb12u1 -> none UNKNOWN',
  'DEBIAN-CVE-2099-0003 zlib1g(zlib) 1:1.2.13.dfsg-1 -> 1:1.3.dfsg-3 UNKNOWN',
];

/** Debian layer + an npm app with vulnerable lodash, minimist, @babel/traverse, debug (express is patched). */
const APP_FINDINGS = [
  'GHSA-67hx-6x53-jw92 @babel/traverse 7.22.0 -> 7.23.2 CRITICAL',
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
  'DEBIAN-CVE-2099-0006 tzdata 2024a-0+deb12u1 -> none UNKNOWN',
  'DEBIAN-CVE-2099-0003 zlib1g(zlib) 1:1.2.13.dfsg-1 -> 1:1.3.dfsg-3 UNKNOWN',
];

let t: TestDaemon;
let work: string;
let host: string;
let acme: string;
let rival: string;
let baseDigest: string;
let appDigest: string;
let env: Record<string, string>;
let adminEnv: Record<string, string>;

const cli = (args: string[], e = env, cwd?: string) => hangar(args, e, undefined, cwd);
const json = (r: { stdout: string; stderr: string; code: number }) => {
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout.slice(0, 500)} / ${r.stderr.slice(0, 500)}`);
  }
};

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'hangar-sbomcli-'));
  t = await startTestDaemon();
  host = t.daemon.url.replace(/^http:\/\//, '');
  assert.equal((await t.api('POST', '/v1/orgs', { slug: 'acme' })).status, 201);
  assert.equal((await t.api('POST', '/v1/orgs', { slug: 'rival' })).status, 201);
  acme = (await t.api('POST', '/v1/tokens', { org_slug: 'acme', name: 'ci' })).body.token;
  rival = (await t.api('POST', '/v1/tokens', { org_slug: 'rival', name: 'ci' })).body.token;
  for (const [app, token] of [['shop', acme], ['bare', acme], ['empty', acme], ['other', rival]] as const) {
    const r = await t.api('POST', '/v1/apps', { app_name: app }, token);
    assert.ok(r.status < 300, JSON.stringify(r.body));
  }
  baseDigest = await pushLayers(t, 'shop', 'base', [debianBaseLayer()], acme);
  appDigest = await pushLayers(t, 'shop', 'v1', [debianBaseLayer(), npmAppLayer()], acme);
  await pushLayers(t, 'other', 'v1', [debianBaseLayer(), npmAppLayer()], rival);
  await pushBusybox(t, 'bare', 'v1', {}, acme);
  const cfg = join(work, 'cfg');
  mkdirSync(cfg);
  env = { HANGAR_API_URL: t.daemon.url, HANGAR_ACCESS_TOKEN: acme, HANGAR_CONFIG_DIR: cfg };
  adminEnv = { ...env, HANGAR_ACCESS_TOKEN: t.adminToken };
});

after(async () => {
  await t?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('before any vulndb update: status says empty, a scan says to run `hangar vulndb update`', async () => {
  const st = await cli(['vulndb', 'status']);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /empty: load OSV data with `hangar vulndb update/);
  const r = await cli(['registry', 'vulns', '-a', 'shop']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /vulnerability database is empty: load OSV data first with `hangar vulndb update PATH\|URL`/);
  assert.ok(!existsSync(join(t.dataDir, 'vulndb', 'osv.sqlite')), 'a read does not create an empty database');
});

test('vulndb update: admin only; a malformed source fails with a clear message and changes nothing; a relative path works', async () => {
  const osv = await writeOsvDir(join(work, 'osv'));
  const denied = await cli(['vulndb', 'update', osv]);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /updating the vulnerability database needs the admin token/);

  // One good file and one that is not JSON: the import is all or nothing.
  const bad = join(work, 'bad-osv');
  mkdirSync(join(bad, 'npm'), { recursive: true });
  writeFileSync(join(bad, 'npm', 'GHSA-good.json'), JSON.stringify(RECORDS.find((r) => r.id === 'GHSA-35jh-r3h4-6jhm')));
  writeFileSync(join(bad, 'npm', 'GHSA-bad.json'), '{"id": "GHSA-bad", "modified": ');
  const malformed = await cli(['vulndb', 'update', bad], adminEnv);
  assert.equal(malformed.code, 1);
  assert.match(malformed.stderr, /npm\/GHSA-bad\.json is not valid JSON .*nothing was imported.*--skip-invalid/);
  const still = json(await cli(['vulndb', 'status', '--json']));
  assert.deepEqual(still, { advisories: 0, ecosystems: [], last_import: null });
  const missing = await cli(['vulndb', 'update', join(work, 'nope')], adminEnv);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope does not exist; give a directory of OSV JSON files/);

  // A relative path is resolved by the CLI: the daemon never sees the CLI's working directory.
  const up = await cli(['vulndb', 'update', 'osv', '--json'], adminEnv, work);
  assert.equal(up.code, 0, up.stderr);
  const res = json(up);
  assert.equal(res.source, osv);
  assert.equal(res.records, RECORDS.length - 1);
  assert.equal(res.withdrawn, 1);
  assert.deepEqual(res.ecosystems, ['Alpine:v3.18', 'Alpine:v3.19', 'Debian:11', 'Debian:12', 'PyPI', 'npm']);

  // A later malformed import leaves the loaded data as it was.
  assert.equal((await cli(['vulndb', 'update', bad], adminEnv)).code, 1);
  const st = json(await cli(['vulndb', 'status', '--json']));
  assert.equal(st.advisories, RECORDS.length - 1);
  assert.equal(st.last_import.source, osv);
  const human = await cli(['vulndb', 'status']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, new RegExp(`Advisories:\\s+${RECORDS.length - 1}`));
  // --skip-invalid imports the good record and reports the bad one.
  const skip = json(await cli(['vulndb', 'update', bad, '--skip-invalid', '--json'], adminEnv));
  assert.equal(skip.records, 1);
  assert.equal(skip.skipped, 1);
  assert.match(skip.problems[0], /GHSA-bad\.json is not valid JSON/);
});

test('registry vulns --json: exactly the expected findings, for every way of naming the image', async () => {
  const r = await cli(['registry', 'vulns', '-a', 'shop', '--image', 'shop:v1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const res = json(r);
  assert.equal(res.digest, appDigest);
  assert.deepEqual(res.findings.map(line), APP_FINDINGS);
  assert.deepEqual(res.warnings, []);
  assert.equal(res.total, APP_FINDINGS.length);
  assert.deepEqual(res.counts, { UNKNOWN: 4, LOW: 0, MEDIUM: 3, HIGH: 4, CRITICAL: 2 });
  assert.equal(res.findings.find((f: Finding) => f.package === 'lodash').purl, 'pkg:npm/lodash@4.17.20');

  for (const ref of [`${host}/shop:v1`, `localhost:${t.daemon.port}/shop:v1`, `shop@${appDigest}`, `${host}/shop@${appDigest}`]) {
    // Through the API: the CLI passes --image through unchanged, and CLI start-up is slow on a loaded machine.
    const res = await t.api('GET', `/v1/apps/shop/vulns?image=${encodeURIComponent(ref)}`, undefined, acme);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const again = res.body;
    assert.equal(again.digest, appDigest, ref);
    assert.deepEqual(again.findings.map(line), APP_FINDINGS, ref);
  }
  const base = json(await cli(['registry', 'vulns', '-a', 'shop', '--image', 'shop:base', '--json']));
  assert.equal(base.digest, baseDigest);
  assert.deepEqual(base.findings.map(line), BASE_FINDINGS);
});

test('default image: the newest pushed tag, unless the app has a completed release', async () => {
  const r = json(await cli(['registry', 'vulns', '-a', 'shop', '--json']));
  assert.equal(r.image_source, 'latest-tag');
  assert.equal(r.image, `${host}/shop:v1`);
  assert.equal(r.digest, appDigest);

  // A release records what the app runs: that wins over a newer push.
  const releases = new Releases(t.daemon.store);
  const app = t.daemon.accounts.findApp('shop')!;
  const rel = releases.create(app.id, 'shop', { image: `${host}/shop:base`, image_digest: baseDigest, strategy: 'immediate', description: 'test', user: 'test', config: {} as never });
  try {
    const pending = json(await cli(['registry', 'vulns', '-a', 'shop', '--json']));
    assert.equal(pending.digest, appDigest, 'a release that has not completed is not what the app runs');
    releases.finish(rel.id, 'complete');
    const cur = json(await cli(['registry', 'vulns', '-a', 'shop', '--json']));
    assert.equal(cur.image_source, 'release');
    assert.equal(cur.image, `${host}/shop:base`);
    assert.equal(cur.digest, baseDigest);
    assert.deepEqual(cur.findings.map(line), BASE_FINDINGS);
  } finally {
    releases.finish(rel.id, 'failed', 'test over');
  }
});

test('--severity filters what is shown; --fail-on decides on every finding (exit 3)', async () => {
  const high = await cli(['registry', 'vulns', '-a', 'shop', '--image', 'shop:v1', '--severity', 'high', '--json']);
  assert.equal(high.code, 0);
  const h = json(high);
  assert.deepEqual(h.findings.map(line), APP_FINDINGS.slice(0, 6));
  assert.equal(h.total, APP_FINDINGS.length);

  const code = async (image: string, ...flags: string[]) => (await cli(['registry', 'vulns', '-a', 'shop', '--image', image, '--json', ...flags])).code;
  assert.equal(await code('shop:v1', '--fail-on', 'high'), 3);
  assert.equal(await code('shop:v1', '--fail-on', 'critical'), 3);
  assert.equal(await code('shop:base', '--fail-on', 'high'), 3);
  assert.equal(await code('shop:base', '--fail-on', 'critical'), 0, 'the Debian layer alone has nothing critical');
  // Filtering to CRITICAL shows nothing for the base image, but its HIGH findings still fail --fail-on high.
  const filtered = await cli(['registry', 'vulns', '-a', 'shop', '--image', 'shop:base', '--severity', 'critical', '--fail-on', 'high', '--json']);
  assert.equal(filtered.code, 3);
  assert.deepEqual(json(filtered).findings, []);

  // The human table.
  const table = await cli(['registry', 'vulns', '-a', 'shop', '--image', 'shop:v1', '--severity', 'medium', '--fail-on', 'critical']);
  assert.equal(table.code, 3);
  assert.match(table.stdout, /^SEVERITY\s+ID\s+PACKAGE\s+INSTALLED\s+FIXED\s+SUMMARY$/m);
  assert.match(table.stdout, /^CRITICAL\s+GHSA-67hx-6x53-jw92\s+@babel\/traverse\s+7\.22\.0\s+7\.23\.2\s+Babel/m);
  assert.match(table.stdout, /^HIGH\s+DEBIAN-CVE-2099-0004\s+bash\s+5\.2\.15-2\+b2\s+\(none\)/m);
  assert.match(table.stdout, /\(4 more below MEDIUM not shown\)/);
  assert.doesNotMatch(table.stdout, /tzdata/);
  assert.match(table.stderr, /Failing: findings at or above CRITICAL/);

  const badLevel = await cli(['registry', 'vulns', '-a', 'shop', '--fail-on', 'severe']);
  assert.equal(badLevel.code, 2);
  assert.match(badLevel.stderr, /--fail-on takes one of UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL/);
});

test('registry sbom: SPDX 2.3 and CycloneDX 1.5 with purls; the second call is served from the per-digest cache', async () => {
  // Freshly pushed, never inventoried: the first call computes, the second reads the cache.
  const freshDigest = await pushLayers(t, 'shop', 'sbom', [debianBaseLayer(), npmAppLayer(), [{ path: 'app/VERSION', data: 'sbom\n' }]], acme);
  const cacheFile = join(t.dataDir, 'sbom', freshDigest.replace(':', '-') + '.json');
  assert.ok(!existsSync(cacheFile));
  const q = `/v1/apps/shop/sbom?image=shop:sbom&format=spdx`;
  const first = await fetch(t.daemon.url + q, { headers: { authorization: `Bearer ${acme}` } });
  const firstText = await first.text();
  assert.equal(first.status, 200, firstText);
  assert.equal(first.headers.get('x-hangar-sbom-cache'), 'miss');
  assert.equal(first.headers.get('x-hangar-image-digest'), freshDigest);
  assert.ok(existsSync(cacheFile), 'the inventory is cached under the data dir, per digest');
  const t0 = performance.now();
  const second = await fetch(t.daemon.url + q, { headers: { authorization: `Bearer ${acme}` } });
  const secondText = await second.text();
  const ms = performance.now() - t0;
  assert.equal(second.headers.get('x-hangar-sbom-cache'), 'hit');
  assert.equal(secondText, firstText, 'same image, same document');
  assert.ok(ms < 1000, `cached SBOM took ${ms} ms`);

  // SPDX through the CLI, to a file.
  const out = join(work, 'sbom.spdx.json');
  const r = await cli(['registry', 'sbom', '-a', 'shop', '--image', 'shop:sbom', '--format', 'spdx', '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Wrote the SPDX 2\.3 SBOM of shop/);
  const spdx = JSON.parse(readFileSync(out, 'utf8'));
  assert.deepEqual(JSON.parse(firstText), spdx);
  assert.equal(spdx.spdxVersion, 'SPDX-2.3');
  assert.equal(spdx.dataLicense, 'CC0-1.0');
  assert.equal(spdx.SPDXID, 'SPDXRef-DOCUMENT');
  assert.match(spdx.creationInfo.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const ids = new Set(spdx.packages.map((p: { SPDXID: string }) => p.SPDXID));
  assert.equal(ids.size, spdx.packages.length, 'SPDX ids are unique');
  for (const rel of spdx.relationships) assert.ok(rel.spdxElementId === 'SPDXRef-DOCUMENT' || ids.has(rel.spdxElementId), rel.spdxElementId);
  const spdxPurls: string[] = spdx.packages.flatMap((p: { externalRefs?: Array<{ referenceType: string; referenceLocator: string }> }) =>
    (p.externalRefs ?? []).filter((e) => e.referenceType === 'purl').map((e) => e.referenceLocator),
  );
  assert.equal(spdxPurls.length, 11);
  for (const p of spdxPurls) assert.ok(parsePurl(p), p);
  assert.ok(spdxPurls.includes('pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12'), spdxPurls.join('\n'));
  assert.ok(spdxPurls.includes('pkg:npm/lodash@4.17.20'));
  assert.ok(spdxPurls.includes('pkg:npm/%40babel/traverse@7.22.0'));

  // CycloneDX on stdout.
  const c = await cli(['registry', 'sbom', '-a', 'shop', '--image', 'shop:sbom', '--format', 'cyclonedx']);
  assert.equal(c.code, 0, c.stderr);
  const cdx = JSON.parse(c.stdout);
  assert.equal(cdx.bomFormat, 'CycloneDX');
  assert.equal(cdx.specVersion, '1.5');
  assert.match(cdx.serialNumber, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(cdx.metadata.component.type, 'container');
  const libs = cdx.components.filter((x: { type: string }) => x.type === 'library');
  assert.deepEqual(libs.map((x: { purl: string }) => x.purl).sort(), [...spdxPurls].sort());
  for (const x of libs) assert.equal(x['bom-ref'], x.purl);
  assert.notEqual(cdx.serialNumber.slice(9), spdx.documentNamespace.split('-').slice(-5).join('-'), 'each format has its own serial');

  const badFormat = await cli(['registry', 'sbom', '-a', 'shop', '--format', 'xml']);
  assert.equal(badFormat.code, 2);
  assert.match(badFormat.stderr, /--format takes spdx or cyclonedx/);
});

test('bad input: unknown app, another org, an image without package data, an image outside the registry, an app without images', async () => {
  const unknown = await cli(['registry', 'vulns', '-a', 'nosuch']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /app "nosuch" not found/);

  // Another org's token sees no app; another org's image is refused.
  const rivalEnv = { ...env, HANGAR_ACCESS_TOKEN: rival };
  for (const cmd of [['registry', 'vulns'], ['registry', 'sbom']]) {
    const r = await cli([...cmd, '-a', 'shop'], rivalEnv);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /app "shop" not found/);
    assert.equal(r.stdout, '');
  }
  const theirs = await cli(['registry', 'sbom', '-a', 'shop', '--image', 'other:v1']);
  assert.equal(theirs.code, 1);
  assert.match(theirs.stderr, /image other:v1 belongs to an app of another organization/);
  const api = await t.api('GET', `/v1/apps/shop/vulns?image=${encodeURIComponent(`${host}/other:v1`)}`, undefined, acme);
  assert.equal(api.status, 403);
  assert.equal(api.body.code, 'IMAGE_FORBIDDEN');

  const bare = await cli(['registry', 'sbom', '-a', 'bare']);
  assert.equal(bare.code, 1);
  assert.match(bare.stderr, /no package data found in image bare@sha256:[0-9a-f]{64}: looked for dpkg, apk and rpm databases/);
  const bareVulns = await cli(['registry', 'vulns', '-a', 'bare', '--fail-on', 'low']);
  assert.equal(bareVulns.code, 1, 'an error, not a clean pass');
  assert.match(bareVulns.stderr, /no package data found/);

  const external = await cli(['registry', 'vulns', '-a', 'shop', '--image', 'registry.example.com/shop:v1']);
  assert.equal(external.code, 1);
  assert.match(external.stderr, /only images in Hangar's own registry can be inspected/);
  const missingTag = await cli(['registry', 'vulns', '-a', 'shop', '--image', 'shop:nope']);
  assert.equal(missingTag.code, 1);
  assert.match(missingTag.stderr, /image shop:nope is not in Hangar's registry/);

  const empty = await cli(['registry', 'sbom', '-a', 'empty']);
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /app empty has no image in Hangar's registry yet/);

  const relative = await t.api('POST', '/v1/vulndb', { source: 'osv' });
  assert.equal(relative.status, 400);
  assert.match(relative.body.error, /neither an absolute path on the daemon host nor an http\(s\) URL/);
});

test('vulndb update from an http URL (loopback server); a failing URL says so', async () => {
  const body = JSON.stringify(RECORDS.filter((r) => String(r.id).startsWith('GHSA')));
  let release: () => void = () => {};
  const stalled = new Promise<void>((r) => (release = r));
  let requested: () => void = () => {};
  const slowRequested = new Promise<void>((r) => (requested = r));
  const server = createServer((req, res) => {
    if (req.url === '/osv/npm.json') res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    else if (req.url === '/osv/slow.json') {
      requested();
      void stalled.then(() => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
    }
    else res.writeHead(404).end('not here');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const r = await cli(['vulndb', 'update', `${base}/osv/npm.json`, '--json'], adminEnv);
    assert.equal(r.code, 0, r.stderr);
    const res = json(r);
    assert.equal(res.source, `${base}/osv/npm.json`);
    assert.equal(res.records, RECORDS.filter((x) => String(x.id).startsWith('GHSA')).length);
    assert.deepEqual(res.imported_ecosystems, ['npm']);
    const gone = await cli(['vulndb', 'update', `${base}/missing.zip`], adminEnv);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /downloading http:\/\/127\.0\.0\.1:\d+\/missing\.zip failed with HTTP 404/);

    // One update at a time: while a download stalls, a second update is refused.
    const first = t.api('POST', '/v1/vulndb', { source: `${base}/osv/slow.json` });
    await slowRequested;
    const second = await t.api('POST', '/v1/vulndb', { source: `${base}/osv/npm.json` });
    assert.equal(second.status, 409, JSON.stringify(second.body));
    assert.match(second.body.error, /already running; wait for it to finish/);
    release();
    assert.equal((await first).status, 200);
  } finally {
    release();
    server.close();
  }
});

test('a damaged database file: a clear message saying what to do, not an internal error', async () => {
  const file = join(t.dataDir, 'vulndb', 'osv.sqlite');
  for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
  writeFileSync(file, 'this is not a database'.repeat(100));
  const st = await cli(['vulndb', 'status']);
  assert.equal(st.code, 1);
  assert.match(st.stderr, /vulnerability database .*osv\.sqlite cannot be opened .*delete it and run "hangar vulndb update" again/);
  const scan = await cli(['registry', 'vulns', '-a', 'shop']);
  assert.equal(scan.code, 1);
  assert.match(scan.stderr, /cannot be opened/);
});
