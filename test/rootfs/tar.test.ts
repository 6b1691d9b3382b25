import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, symlinkSync, linkSync } from 'node:fs';
import { join } from 'node:path';
import { TarParser, TarFormatError, type TarHeader } from '../../src/rootfs/tar.js';
import { makeTar, header } from '../fixtures/tar-writer.js';
import { tempDir } from './helpers.js';

function parse(buf: Buffer, chunk = buf.length): { h: TarHeader; body: Buffer }[] {
  const out: { h: TarHeader; body: Buffer[] }[] = [];
  const p = new TarParser({
    entry: (h) => out.push({ h, body: [] }),
    data: (c) => out[out.length - 1]!.body.push(Buffer.from(c)),
    endEntry: () => {},
  });
  for (let i = 0; i < buf.length; i += chunk) p.write(buf.subarray(i, i + chunk));
  p.end();
  return out.map((e) => ({ h: e.h, body: Buffer.concat(e.body) }));
}

test('PAX long names, long link targets, xattrs, big uids and mtimes survive any chunking', () => {
  const long = 'd/'.repeat(80) + 'file-with-a-very-long-name';
  const tar = makeTar([
    { name: long, body: 'hello', uid: 3_000_000, gid: 7, mtime: 1_234_567_890, xattrs: { 'security.capability': Buffer.from([1, 0, 0, 2]), 'user.k': 'v' } },
    { name: 'ln', type: 'symlink', linkname: 'x/'.repeat(90) + 'target' },
    { name: 'big-uid', body: '', uid: 0o77777777 + 5 },
    { name: 'frac', body: 'f', pax: { mtime: '1700000000.5' } },
  ]);
  for (const chunk of [tar.length, 1, 7, 511, 512, 513, 4096]) {
    const e = parse(tar, chunk);
    assert.equal(e.length, 4);
    assert.equal(e[0]!.h.name, long);
    assert.equal(e[0]!.body.toString(), 'hello');
    assert.equal(e[0]!.h.uid, 3_000_000);
    assert.equal(e[0]!.h.mtime, 1_234_567_890);
    assert.deepEqual(e[0]!.h.xattrs.get('security.capability'), Buffer.from([1, 0, 0, 2]));
    assert.equal(e[0]!.h.xattrs.get('user.k')!.toString(), 'v');
    assert.equal(e[1]!.h.linkname, 'x/'.repeat(90) + 'target');
    assert.equal(e[1]!.h.type, 'symlink');
    assert.equal(e[2]!.h.uid, 0o77777777 + 5, 'base-256 number');
    assert.equal(e[3]!.h.mtime, 1_700_000_000.5);
  }
});

test('GNU long names and long links', () => {
  const long = 'g/'.repeat(70) + 'name';
  const e = parse(makeTar([{ name: long, body: 'x' }, { name: 'h', type: 'hardlink', linkname: long + '-'.repeat(50) }], { longNames: 'gnu' }));
  assert.equal(e[0]!.h.name, long);
  assert.equal(e[1]!.h.linkname, long + '-'.repeat(50));
});

test('archives written by GNU tar (gnu and posix formats) parse like tar itself lists them', () => {
  const t = tempDir();
  try {
    const src = join(t.dir, 'src');
    mkdirSync(join(src, 'dir', 'sub'), { recursive: true });
    writeFileSync(join(src, 'dir', 'file'), 'content');
    writeFileSync(join(src, 'dir', 'sub', 'x'.repeat(150)), 'long');
    symlinkSync('../dir/file', join(src, 'dir', 'sub', 'link'));
    linkSync(join(src, 'dir', 'file'), join(src, 'hard'));
    for (const format of ['gnu', 'posix', 'ustar']) {
      if (format === 'ustar') execFileSync('rm', ['-f', join(src, 'dir', 'sub', 'x'.repeat(150))]);
      const tar = execFileSync('tar', [`--format=${format}`, '-C', src, '-cf', '-', '.'], { maxBuffer: 1 << 26 });
      const listed = execFileSync('tar', ['-tf', '-'], { input: tar, encoding: 'utf8' }).trim().split('\n');
      const e = parse(tar, 1000);
      assert.deepEqual(e.map((x) => x.h.name), listed, format);
      const file = e.find((x) => x.h.name === './dir/file')!;
      assert.equal(file.body.toString(), 'content');
      assert.equal(e.find((x) => x.h.name === './hard')!.h.type, 'hardlink');
      assert.equal(e.find((x) => x.h.name === './dir/sub/link')!.h.linkname, '../dir/file');
    }
  } finally {
    t.cleanup();
  }
});

test('format errors: bad checksum, not a tar, truncation, sparse, unknown types, oversized PAX', () => {
  const good = makeTar([{ name: 'a', body: 'x'.repeat(1000) }]);
  const bad = Buffer.from(good);
  bad[10] = 0x41;
  assert.throws(() => parse(bad), (e: Error) => e instanceof TarFormatError && /not a tar archive/.test(e.message));
  assert.throws(() => parse(Buffer.from('hello world, definitely not tar'.repeat(40))), /not a tar archive/);
  assert.throws(() => parse(good.subarray(0, 700)), /truncated/);
  assert.throws(() => parse(good.subarray(0, 300)), /truncated/);
  assert.throws(() => parse(Buffer.alloc(0)), /empty/);
  assert.throws(() => parse(makeTar([{ name: 's', body: 'x', pax: { 'GNU.sparse.major': '1' } }])), /sparse/);
  assert.throws(() => parse(Buffer.concat([header({ name: 'v', typeflag: 'V', size: 0 }), Buffer.alloc(1024)])), /unsupported tar entry type 'V'/);
  const hugePax = Buffer.concat([header({ name: 'p', typeflag: 'x', size: 2 << 20 }), Buffer.alloc(1024)]);
  assert.throws(() => parse(hugePax), /exceeds/);
  // A missing end-of-archive marker is accepted (Go's archive/tar does too).
  assert.equal(parse(makeTar([{ name: 'a', body: 'b' }], { noTrailer: true })).length, 1);
});
