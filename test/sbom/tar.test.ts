import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { run } from '../../src/shared/process.js';
import { decompressStream, readTar } from '../../src/sbom/index.js';
import { isHangarError } from '../../src/shared/errors.js';
import { makeTar } from './tar-writer.js';
import { tempDir } from './fixtures.js';

async function list(buf: Buffer, chunk = 7777): Promise<Array<{ path: string; type: string; linkpath: string; data?: string }>> {
  const out: Array<{ path: string; type: string; linkpath: string; data?: string }> = [];
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) chunks.push(buf.subarray(i, i + chunk));
  await readTar(
    decompressStream(Readable.from(chunks)),
    {
      want(e) {
        out.push({ path: e.path, type: e.type, linkpath: e.linkpath });
        return e.type === 'file';
      },
      body(e, data) {
        out.find((o) => o.path === e.path && o.data === undefined)!.data = data.toString();
      },
    },
    1 << 20,
  );
  return out;
}

const long = 'a'.repeat(60) + '/' + 'b'.repeat(60) + '/' + 'c'.repeat(90) + '/METADATA';

test('reads names longer than 100 bytes written as GNU L records and as PAX headers', async () => {
  for (const longNames of ['gnu', 'pax'] as const) {
    const tar = makeTar(
      [
        { path: long, data: 'Name: x\n' },
        { path: 'short', data: 'hello' },
        { path: 'link', type: 'symlink', target: '/' + 'd'.repeat(150) },
      ],
      { longNames },
    );
    const got = await list(tar, 100);
    assert.deepEqual(got, [
      { path: long, type: 'file', linkpath: '', data: 'Name: x\n' },
      { path: 'short', type: 'file', linkpath: '', data: 'hello' },
      { path: 'link', type: 'symlink', linkpath: '/' + 'd'.repeat(150) },
    ]);
  }
});

test('agrees with GNU tar on gnu, posix (pax) and ustar (prefix field) archives, gzip and zstd compressed', async (t) => {
  const { dir, cleanup } = await tempDir('tar');
  t.after(cleanup);
  const root = join(dir, 'root');
  const deep = join(root, 'x'.repeat(70), 'y'.repeat(70));
  await mkdir(deep, { recursive: true });
  await writeFile(join(deep, 'file.txt'), 'deep file\n');
  await writeFile(join(root, 'top.txt'), 'top\n');
  await writeFile(join(deep, 'z'.repeat(120)), 'very long name\n');
  await symlink('top.txt', join(root, 'alias'));
  await writeFile(join(root, 'big.bin'), Buffer.alloc(300_000, 7));
  for (const [format, args] of [
    ['gnu', ['--format=gnu', '-cf']],
    ['posix', ['--format=posix', '-cf']],
    ['ustar', ['--format=ustar', '--exclude', 'z'.repeat(120), '-cf']],
    ['gnu+gzip', ['--format=gnu', '-czf']],
    ['posix+zstd', ['--format=posix', '--zstd', '-cf']],
  ] as const) {
    const archive = join(dir, `a-${format}`);
    await run('tar', ['-C', root, ...args, archive, '.']);
    const expected = (await run('tar', ['-tf', archive])).stdout
      .split('\n')
      .filter(Boolean)
      .map((p) => p.replace(/^\.\/?/, '').replace(/\/$/, ''))
      .filter(Boolean)
      .sort();
    const got = await list(await readFile(archive));
    assert.deepEqual(got.map((g) => g.path).sort(), expected, format);
    assert.equal(got.find((g) => g.path.endsWith('file.txt'))?.data, 'deep file\n', format);
    assert.equal(got.find((g) => g.path === 'alias')?.linkpath, 'top.txt', format);
    assert.equal(got.find((g) => g.path === 'big.bin')?.data?.length, 300_000, format);
  }
});

test('corrupt and truncated layers give clear errors', async () => {
  await assert.rejects(list(Buffer.alloc(2048, 0x41)), (e: unknown) => isHangarError(e) && e.code === 'SBOM_BAD_LAYER' && /checksum/.test(e.message));
  const tar = makeTar([{ path: 'f', data: Buffer.alloc(5000, 1) }]);
  await assert.rejects(list(tar.subarray(0, 1500)), (e: unknown) => isHangarError(e) && /truncated/.test(e.message));
  const gz = (await import('node:zlib')).gzipSync(tar);
  await assert.rejects(list(Buffer.concat([gz.subarray(0, 20), Buffer.alloc(200, 9)])), (e: unknown) => isHangarError(e) && /gzip/.test(e.message));
});

test('entries that climb out of the root are ignored', async () => {
  const tar = makeTar([
    { path: '../../etc/passwd', data: 'evil' },
    { path: './ok/../fine', data: 'good' },
  ]);
  const got = await list(tar);
  assert.deepEqual(got.map((g) => g.path), ['fine']);
});

test('zstd: the zstd program and the pure-JS decoder give identical output; corrupt data fails on both', async (t) => {
  const { dir, cleanup } = await tempDir('zstd');
  t.after(cleanup);
  const raw = join(dir, 'data.bin');
  const payload = Buffer.concat(Array.from({ length: 200 }, (_, i) => Buffer.from(`line ${i} ${'x'.repeat(i % 97)}\n`.repeat(50))));
  await writeFile(raw, payload);
  await run('zstd', ['-q', '-f', '-o', raw + '.zst', raw]);
  const z = await readFile(raw + '.zst');
  const chunks = (b: Buffer) => Readable.from(Array.from({ length: Math.ceil(b.length / 4096) }, (_, i) => b.subarray(i * 4096, (i + 1) * 4096)));
  const collect = async (mode: 'js' | 'auto', b: Buffer) => {
    const out: Buffer[] = [];
    for await (const c of decompressStream(chunks(b), { zstd: mode })) out.push(c);
    return Buffer.concat(out);
  };
  assert.ok((await collect('auto', z)).equals(payload));
  assert.ok((await collect('js', z)).equals(payload));
  const bad = Buffer.from(z);
  bad.fill(0x55, 20, 200);
  for (const mode of ['auto', 'js'] as const) {
    await assert.rejects(collect(mode, bad), (e: unknown) => isHangarError(e) && e.code === 'SBOM_BAD_LAYER' && /not valid zstd data/.test(e.message), mode);
  }
});
