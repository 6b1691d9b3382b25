import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { run } from '../../src/shared/process.js';
import { isHangarError } from '../../src/shared/errors.js';
import { importOsv, VulnDb, VULNDB_SCHEMA_VERSION } from '../../src/vulns/index.js';
import { tempDir } from '../sbom/fixtures.js';
import { RECORDS, writeOsvDir } from './osv-fixture.js';

const count = (db: VulnDb, table: string) => (db.db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;

test('import from a directory and from an OSV-style all.zip give the same database; re-import is idempotent', async (t) => {
  const { dir, cleanup } = await tempDir('vulns-import');
  t.after(cleanup);
  const osv = await writeOsvDir(join(dir, 'osv'));
  await run('zip', ['-q', '-r', join(dir, 'all.zip'), '.'], { cwd: osv });

  const a = VulnDb.open(join(dir, 'a.sqlite'));
  t.after(() => a.close());
  const r1 = await importOsv(a, osv);
  assert.deepEqual(r1.ecosystems, ['Alpine:v3.18', 'Alpine:v3.19', 'Debian:11', 'Debian:12', 'PyPI', 'npm']);
  const first = { adv: count(a, 'advisories'), aff: count(a, 'affected'), ali: count(a, 'aliases') };
  await importOsv(a, osv);
  assert.deepEqual({ adv: count(a, 'advisories'), aff: count(a, 'affected'), ali: count(a, 'aliases') }, first);
  assert.equal(first.adv, RECORDS.length - 1);

  const r2 = await importOsv(join(dir, 'b.sqlite'), join(dir, 'all.zip'));
  assert.equal(r2.records, r1.records);
  const b = VulnDb.open(join(dir, 'b.sqlite'));
  t.after(() => b.close());
  const dump = (db: VulnDb) => db.db.prepare('SELECT f.ecosystem, f.name, f.severity, f.ranges, f.versions, a.id, a.summary, a.aliases FROM affected f JOIN advisories a ON a.id = f.advisory_id ORDER BY a.id, f.ecosystem, f.name, f.ranges').all();
  assert.deepEqual(dump(b), dump(a));
  const stats = b.stats();
  assert.equal(stats.advisories, RECORDS.length - 1);
  assert.equal(stats.lastImport?.source, join(dir, 'all.zip'));
  assert.equal(b.schemaVersion, VULNDB_SCHEMA_VERSION);

  // A later export that withdraws an advisory removes it.
  const lodash = RECORDS.find((r) => r.id === 'GHSA-35jh-r3h4-6jhm')!;
  await writeFile(join(dir, 'withdraw.json'), JSON.stringify({ ...lodash, modified: '2024-06-01T00:00:00Z', withdrawn: '2024-06-01T00:00:00Z' }));
  const r3 = await importOsv(a, join(dir, 'withdraw.json'));
  assert.equal(r3.withdrawn, 1);
  assert.equal(a.affected(['npm'], 'lodash').map((x) => x.advisory.id).join(), 'GHSA-p6mc-m468-83gw');
});

test('import over http from a loopback server (zip and single JSON), and download failures', async (t) => {
  const { dir, cleanup } = await tempDir('vulns-http');
  t.after(cleanup);
  const osv = await writeOsvDir(join(dir, 'osv'));
  await run('zip', ['-q', '-r', join(dir, 'all.zip'), '.'], { cwd: osv });
  const zipBytes = await readFile(join(dir, 'all.zip'));
  const server = createServer((req, res) => {
    if (req.url === '/npm/all.zip') res.writeHead(200, { 'content-type': 'application/zip' }).end(zipBytes);
    else if (req.url === '/one.json') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(RECORDS.slice(0, 3)));
    else res.writeHead(404).end('not found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const dbPath = join(dir, 'db.sqlite');
  const r = await importOsv(dbPath, `${base}/npm/all.zip`);
  assert.equal(r.records, RECORDS.length - 1);
  const one = await importOsv(join(dir, 'one.sqlite'), `${base}/one.json`);
  assert.equal(one.records, 3);
  await assert.rejects(importOsv(dbPath, `${base}/missing.zip`), (e: unknown) => isHangarError(e) && e.code === 'UNAVAILABLE' && /HTTP 404/.test(e.message));
  await assert.rejects(importOsv(dbPath, `${base}/npm/all.zip`, { maxDownloadBytes: 100 }), (e: unknown) => isHangarError(e) && e.code === 'TOO_LARGE');
  await assert.rejects(importOsv(dbPath, 'ftp://127.0.0.1/all.zip'), /unsupported source/);
});

test('malformed OSV data aborts the import and leaves the database unchanged; skipInvalid skips it', async (t) => {
  const { dir, cleanup } = await tempDir('vulns-bad');
  t.after(cleanup);
  const osv = await writeOsvDir(join(dir, 'osv'));
  const db = VulnDb.open(join(dir, 'db.sqlite'));
  t.after(() => db.close());
  await importOsv(db, osv);
  const before = count(db, 'affected');
  await mkdir(join(dir, 'bad'));
  await writeFile(join(dir, 'bad', 'a-good.json'), JSON.stringify({ id: 'GHSA-2099-good-0001', modified: '2024-01-01T00:00:00Z', summary: null, aliases: null, affected: [{ package: { ecosystem: 'npm', name: 'left-pad' }, ranges: null, versions: ['1.0.0'], ecosystem_specific: null }] }));
  await writeFile(join(dir, 'bad', 'b-broken.json'), '{"id": "GHSA-x", ');
  await writeFile(join(dir, 'bad', 'c-noid.json'), JSON.stringify({ modified: '2024-01-01T00:00:00Z' }));
  await assert.rejects(importOsv(db, join(dir, 'bad')), (e: unknown) => {
    assert.ok(isHangarError(e));
    assert.equal(e.code, 'VULNDB_BAD_RECORD');
    assert.match(e.message, /^b-broken.json is not valid JSON .*nothing was imported/);
    return true;
  });
  assert.equal(count(db, 'affected'), before, 'rolled back: the good record before the bad one is not there');
  assert.equal(db.affected(['npm'], 'left-pad').length, 0);
  const r = await importOsv(db, join(dir, 'bad'), { skipInvalid: true });
  assert.equal(r.records, 1);
  assert.equal(r.skipped, 2);
  assert.match(r.problems[1]!, /invalid OSV record in c-noid.json: id:/);
  assert.equal(db.affected(['npm'], 'left-pad').length, 1);

  // Two imports through one connection at once: the second is refused, the first completes.
  const [first, second] = await Promise.allSettled([importOsv(db, osv), importOsv(db, osv)]);
  assert.equal(first.status, 'fulfilled');
  assert.ok(second.status === 'rejected' && isHangarError(second.reason) && second.reason.code === 'CONFLICT');

  await mkdir(join(dir, 'empty'));
  await assert.rejects(importOsv(db, join(dir, 'empty')), /holds no .json files/);
  await assert.rejects(importOsv(db, join(dir, 'nope')), /does not exist/);
  await run('python3', ['-c', 'import zipfile,sys\nwith zipfile.ZipFile(sys.argv[1], "w") as z:\n  z.writestr("../x.json", "{}")', join(dir, 'slip.zip')]);
  await assert.rejects(importOsv(db, join(dir, 'slip.zip')), /zip-slip/);
});

test('database files: corrupt, from a newer Hangar, and migrated from an older schema', async (t) => {
  const { dir, cleanup } = await tempDir('vulns-db');
  t.after(cleanup);
  await writeFile(join(dir, 'corrupt.sqlite'), Buffer.alloc(8192, 0x42));
  assert.throws(() => VulnDb.open(join(dir, 'corrupt.sqlite')), (e: unknown) => isHangarError(e) && e.code === 'VULNDB_CORRUPT' && /delete it and run "hangar vulndb update" again/.test(e.message));

  const future = new Database(join(dir, 'future.sqlite'));
  future.pragma(`user_version = ${VULNDB_SCHEMA_VERSION + 5}`);
  future.close();
  assert.throws(() => VulnDb.open(join(dir, 'future.sqlite')), (e: unknown) => isHangarError(e) && e.code === 'VULNDB_TOO_NEW');

  // A database left at schema 1 (before the ecosystems table) is migrated and keeps its data.
  const p = join(dir, 'old.sqlite');
  await importOsv(p, await writeOsvDir(join(dir, 'osv')));
  const raw = new Database(p);
  raw.exec('DROP TABLE ecosystems');
  raw.pragma('user_version = 1');
  raw.close();
  const db = VulnDb.open(p);
  t.after(() => db.close());
  assert.equal(db.schemaVersion, VULNDB_SCHEMA_VERSION);
  assert.ok(db.hasEcosystem('Debian:12'));
  assert.equal(db.stats().advisories, RECORDS.length - 1);
});
