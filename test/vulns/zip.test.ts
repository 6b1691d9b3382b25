import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../src/shared/process.js';
import { isHangarError } from '../../src/shared/errors.js';
import { isSafeZipName, ZipReader } from '../../src/vulns/index.js';
import { tempDir } from '../sbom/fixtures.js';

async function zipOf(dir: string, name: string, files: Record<string, string | Buffer>, extra: string[] = []): Promise<string> {
  const src = join(dir, `${name}-src`);
  for (const [p, data] of Object.entries(files)) {
    await mkdir(join(src, p, '..'), { recursive: true });
    await writeFile(join(src, p), data);
  }
  const out = join(dir, `${name}.zip`);
  await run('zip', ['-q', '-r', ...extra, out, '.'], { cwd: src });
  return out;
}

test('reads archives made by Info-ZIP: deflated, stored, and zip64', async (t) => {
  const { dir, cleanup } = await tempDir('zip');
  t.after(cleanup);
  const files = { 'a.json': '{"id":"A"}', 'sub/b.json': JSON.stringify({ id: 'B', pad: 'x'.repeat(100_000) }), 'empty.json': '' };
  for (const [name, extra] of [['deflate', []], ['stored', ['-0']], ['zip64', ['-fz']]] as const) {
    const zip = new ZipReader(await zipOf(dir, name, files, [...extra]));
    try {
      const got = Object.fromEntries(zip.entries.filter((e) => !e.name.endsWith('/')).map((e) => [e.name, zip.read(e).toString()]));
      assert.deepEqual(got, files, name);
    } finally {
      zip.close();
    }
  }
});

test('zip-slip names, damaged archives, CRC errors and oversized entries are refused', async (t) => {
  const { dir, cleanup } = await tempDir('zip-bad');
  t.after(cleanup);
  const evil = join(dir, 'evil.zip');
  await run('python3', ['-c', 'import zipfile,sys\nwith zipfile.ZipFile(sys.argv[1], "w") as z:\n  z.writestr("ok.json", "{}")\n  z.writestr("../../etc/evil.json", "{}")', evil]);
  assert.throws(() => new ZipReader(evil), (e: unknown) => isHangarError(e) && e.code === 'VULNDB_BAD_ZIP' && /"..\/..\/etc\/evil.json" that escapes the archive root \(zip-slip\)/.test(e.message));
  for (const n of ['/abs.json', 'a/../../b', 'c:\\x', 'a\\..\\b']) assert.equal(isSafeZipName(n), false, n);
  assert.equal(isSafeZipName('osv/GHSA-1.json'), true);

  const good = await zipOf(dir, 'good', { 'x.json': 'hello world '.repeat(50) });
  const bytes = await readFile(good);
  const truncated = join(dir, 'trunc.zip');
  await writeFile(truncated, bytes.subarray(0, bytes.length - 30));
  assert.throws(() => new ZipReader(truncated), /no end-of-central-directory record/);
  await writeFile(join(dir, 'not.zip'), 'just text, definitely not a zip archive at all');
  assert.throws(() => new ZipReader(join(dir, 'not.zip')), /not a usable zip archive/);

  const stored = await readFile(await zipOf(dir, 'stored', { 'x.json': '{"id":"0123456789"}' }, ['-0']));
  const at = stored.indexOf('0123456789');
  stored[at] = 0x39;
  await writeFile(join(dir, 'crc.zip'), stored);
  const crc = new ZipReader(join(dir, 'crc.zip'));
  assert.throws(() => crc.read(crc.entries[0]!), /fails its CRC check/);
  crc.close();

  const big = new ZipReader(await zipOf(dir, 'big', { 'big.json': Buffer.alloc(200_000, 0x20) }), { maxEntryBytes: 100_000, maxEntries: 10 });
  assert.throws(() => big.read(big.entries[0]!), (e: unknown) => isHangarError(e) && e.code === 'TOO_LARGE');
  big.close();
});
