/**
 * writeLayerBlob against real overlayfs upper dirs, checked by independent
 * tools (GNU tar, gzip, sha256, getcap) and by Hangar's own layer applier:
 * applying the lower layer and then the written layer must reproduce the
 * overlay's merged view exactly.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  linkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { writeLayerBlob, type LayerBlob } from '../../src/build/native/layer-tar.js';
import { encodeHeader } from '../../src/build/tar-header.js';
import { TarParser, type TarHeader } from '../../src/rootfs/tar.js';
import { TreeWriter } from '../../src/rootfs/apply.js';

const HAVE_SETCAP = spawnSync('setcap', ['-v'], { stdio: 'ignore' }).error === undefined;

function sh(file: string, args: string[], input?: string): string {
  return execFileSync(file, args, { encoding: 'utf8', input, maxBuffer: 64 << 20, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Clean-ups run last-registered first (node:test runs t.after hooks in order). */
const cleanups = new WeakMap<TestContext, (() => void)[]>();
function defer(t: TestContext, fn: () => void): void {
  let list = cleanups.get(t);
  if (!list) {
    const fns: (() => void)[] = [];
    cleanups.set(t, (list = fns));
    t.after(() => {
      for (const f of fns.reverse()) f();
    });
  }
  list.push(fn);
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-layer-tar-'));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Overlay {
  lower: string;
  upper: string;
  merged: string;
  unmount(): void;
}

/** Mount an overlay exactly as the native builder does; t.after unmounts it. */
function mountOverlay(t: TestContext, base: string, fillLower: (lower: string) => void): Overlay {
  const [lower, upper, work, merged] = ['L', 'U', 'W', 'M'].map((d) => join(base, d)) as [string, string, string, string];
  for (const d of [lower, upper, work, merged]) mkdirSync(d);
  fillLower(lower);
  sh('mount', [
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${lower},upperdir=${upper},workdir=${work},redirect_dir=off,metacopy=off,index=off,xino=off`,
    merged,
  ]);
  let mounted = true;
  const unmount = () => {
    if (!mounted) return;
    sh('umount', [merged]);
    mounted = false;
  };
  defer(t, () => {
    if (mounted) spawnSync('umount', ['-l', merged]);
  });
  return { lower, upper, merged, unmount };
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Independent checks of the blob's identity: digest, diff_id, size. */
function checkIdentity(blob: LayerBlob, file: string): void {
  assert.equal(blob.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
  assert.equal(blob.digest, sha256(readFileSync(file)));
  assert.equal(blob.size, statSync(file).size);
  const tar = execFileSync('gzip', ['-dc', file], { maxBuffer: 1 << 30 });
  assert.equal(blob.diffId, sha256(tar));
}

interface Listed {
  perm: string;
  owner: string;
  size: string;
  name: string;
  link?: string;
}

/** GNU tar's verbose listing, one record per archive entry. */
function gnuList(file: string, extra: string[] = []): Listed[] {
  const out = sh('tar', ['--numeric-owner', '--quoting-style=literal', ...extra, '-tvzf', file]);
  return out
    .split('\n')
    .filter((l) => l && !l.startsWith('  x: '))
    .map((line) => {
      const m = /^(\S{10})\*?\s+(\S+)\s+(\S+)\s+\S+ \S+ (.*)$/.exec(line);
      assert.ok(m, `unparsed tar listing line ${JSON.stringify(line)}`);
      const [, perm, owner, size, rest] = m as unknown as [string, string, string, string, string];
      if (perm[0] === 'h') {
        const [name, link] = rest.split(' link to ') as [string, string];
        return { perm, owner, size, name, link };
      }
      if (perm[0] === 'l') {
        const [name, link] = rest.split(' -> ') as [string, string];
        return { perm, owner, size, name, link };
      }
      return { perm, owner, size, name: rest };
    });
}

/** Every archive entry as Hangar's own tar reader sees it. */
function hangarEntries(file: string): TarHeader[] {
  const got: TarHeader[] = [];
  const p = new TarParser({ entry: (h) => void got.push(h), data: () => {}, endEntry: () => {} });
  p.write(gunzipSync(readFileSync(file)));
  p.end();
  return got;
}

/** Apply layer blobs in order with Hangar's rootfs applier (the real consumer). */
function applyLayers(root: string, blobs: string[]): void {
  mkdirSync(root, { recursive: true });
  const tree = new TreeWriter(root, { maxEntries: 1e6, maxFileBytes: 1e10 });
  for (const b of blobs) {
    tree.beginLayer();
    const parser = new TarParser(tree);
    parser.write(gunzipSync(readFileSync(b)));
    parser.end();
    tree.endLayer();
  }
  tree.finish();
}

/**
 * What a tree looks like to a program running on it: type, mode, owner,
 * content, link target, device number, mtime (seconds, non-directories) and
 * which paths share an inode.
 */
function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const inodes = new Map<number, string[]>();
  const visit = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      let d = `${(st.mode & 0o170000).toString(8)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isFile()) d += ` ${st.size} ${sha256(readFileSync(p))}`;
      if (st.isSymbolicLink()) d += ` -> ${readlinkSync(p)}`;
      if (st.isCharacterDevice() || st.isBlockDevice()) d += ` dev ${st.rdev}`;
      if (!st.isDirectory()) {
        d += ` t=${Math.floor(st.mtimeMs / 1000)}`;
        if (st.nlink > 1) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), r]);
      }
      out.set(r, d);
      if (st.isDirectory()) visit(p, r);
    }
  };
  visit(root, '');
  for (const paths of inodes.values()) if (paths.length > 1) for (const p of paths) out.set(p, `${out.get(p)} links=${paths.join(',')}`);
  return out;
}

test('an overlay upper dir becomes an OCI layer: whiteouts, opaque dirs, links, devices, modes, capabilities', async (t) => {
  const base = tempDir(t);
  const ov = mountOverlay(t, base, (l) => {
    mkdirSync(join(l, 'etc'));
    writeFileSync(join(l, 'etc/keep.conf'), 'keep\n');
    writeFileSync(join(l, 'etc/gone.conf'), 'gone\n');
    writeFileSync(join(l, 'etc/gone2.conf'), 'gone too\n');
    mkdirSync(join(l, 'var/cache/sub'), { recursive: true });
    writeFileSync(join(l, 'var/cache/a'), 'a');
    writeFileSync(join(l, 'var/cache/sub/c'), 'c');
    mkdirSync(join(l, 'opt/old'), { recursive: true });
    writeFileSync(join(l, 'opt/old/x'), 'x');
    mkdirSync(join(l, 'bin'));
    writeFileSync(join(l, 'bin/tool'), 'v1\n', { mode: 0o755 });
    writeFileSync(join(l, 'bin/su'), 'su\n', { mode: 0o755 });
  });
  const M = ov.merged;
  // Changes made through the mount, as a RUN step would.
  writeFileSync(join(M, 'bin/tool'), 'v2\n');
  sh('chmod', ['4755', join(M, 'bin/su')]);
  rmSync(join(M, 'etc/gone.conf'));
  rmSync(join(M, 'etc/gone2.conf'));
  rmSync(join(M, 'opt/old'), { recursive: true });
  rmSync(join(M, 'var/cache'), { recursive: true });
  mkdirSync(join(M, 'var/cache'));
  writeFileSync(join(M, 'var/cache/new'), 'new\n');
  mkdirSync(join(M, 'app'));
  writeFileSync(join(M, 'app/server.py'), 'print("hi")\n');
  linkSync(join(M, 'app/server.py'), join(M, 'app/hard'));
  symlinkSync('server.py', join(M, 'app/link'));
  sh('mkfifo', [join(M, 'app/fifo')]);
  sh('mknod', ['-m', '0644', join(M, 'app/null'), 'c', '1', '3']);
  sh('mknod', ['-m', '0600', join(M, 'app/loop'), 'b', '7', '0']);
  mkdirSync(join(M, 'app/tmp'));
  sh('chmod', ['1777', join(M, 'app/tmp')]);
  writeFileSync(join(M, 'app/sgid'), 'g', { mode: 0o755 });
  sh('chmod', ['2755', join(M, 'app/sgid')]);
  writeFileSync(join(M, 'app/owned'), 'o');
  sh('chown', ['1234:5678', join(M, 'app/owned')]);
  writeFileSync(join(M, 'app/cap'), 'binary');
  if (HAVE_SETCAP) sh('setcap', ['cap_net_bind_service=+ep', join(M, 'app/cap')]);
  // Sockets cannot be archived: skipped.
  sh('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', join(M, 'app/sock')]);
  // Long names: a ustar prefix split, a PAX path, a PAX linkpath.
  const longDir = `long/${'p'.repeat(90)}`;
  mkdirSync(join(M, longDir), { recursive: true });
  const splitName = `${longDir}/${'q'.repeat(90)}`;
  writeFileSync(join(M, splitName), 'split');
  const paxName = `${longDir}/${'n'.repeat(200)}`;
  writeFileSync(join(M, paxName), 'pax');
  const longTarget = `../${'t'.repeat(150)}`;
  symlinkSync(longTarget, join(M, 'long/link'));
  writeFileSync(join(M, 'app/ünïcode.txt'), 'utf8');
  const merged = snapshot(M);
  ov.unmount();

  const blobFile = join(base, 'layer.tar.gz');
  const blob = await writeLayerBlob(ov.upper, blobFile);
  checkIdentity(blob, blobFile);

  const list = gnuList(blobFile);
  assert.equal(blob.entries, list.length);
  const byName = new Map(list.map((e) => [e.name, e]));
  const names = list.map((e) => e.name);

  // Order: parents before children, siblings by name bytes, no "./" prefix.
  for (const [i, n] of names.entries()) {
    assert.ok(!n.startsWith('./') && !n.startsWith('/'), n);
    const parent = n.replace(/\/?[^/]+\/?$/, '');
    if (parent) assert.ok(names.indexOf(`${parent}/`) > -1 && names.indexOf(`${parent}/`) < i, `${parent}/ before ${n}`);
  }

  // Whiteouts: empty regular files, mode 0, never the 0:0 devices (and never
  // hard links to each other, although overlayfs shares one whiteout inode).
  for (const w of ['etc/.wh.gone.conf', 'etc/.wh.gone2.conf', 'opt/.wh.old']) {
    assert.deepEqual(byName.get(w), { perm: '----------', owner: '0/0', size: '0', name: w }, w);
  }
  assert.ok(!list.some((e) => e.perm[0] === 'c' && e.size === '0,0'), 'no whiteout devices');
  // The recreated directory: its entry, then the opaque marker.
  const vi = names.indexOf('var/cache/');
  assert.equal(names[vi + 1], 'var/cache/.wh..wh..opq');
  assert.equal(byName.get('var/cache/.wh..wh..opq')!.perm[0], '-');
  assert.ok(byName.has('var/cache/new'));
  assert.ok(!names.some((n) => n.startsWith('var/cache/sub') || n === 'var/cache/a'));
  // Untouched lower files are not in the layer; copied-up ones are.
  assert.ok(!byName.has('etc/keep.conf'));
  assert.equal(byName.get('bin/tool')!.size, '3');
  assert.equal(byName.get('bin/su')!.perm, '-rwsr-xr-x');
  assert.equal(byName.get('app/sgid')!.perm, '-rwxr-sr-x');
  assert.equal(byName.get('app/tmp/')!.perm, 'drwxrwxrwt');
  assert.equal(byName.get('app/owned')!.owner, '1234/5678');
  // Hard links: the first path in archive order is the file, the second links to it.
  assert.deepEqual(byName.get('app/server.py'), { perm: 'hrw-r--r--', owner: '0/0', size: '0', name: 'app/server.py', link: 'app/hard' });
  assert.equal(byName.get('app/hard')!.size, '12');
  assert.equal(byName.get('app/link')!.link, 'server.py');
  assert.equal(byName.get('app/fifo')!.perm[0], 'p');
  assert.equal(byName.get('app/null')!.perm, 'crw-r--r--');
  assert.equal(byName.get('app/null')!.size, '1,3');
  assert.equal(byName.get('app/loop')!.perm, 'brw-------');
  assert.equal(byName.get('app/loop')!.size, '7,0');
  assert.ok(!byName.has('app/sock'), 'sockets are skipped');
  assert.ok(byName.has(splitName) && byName.has(paxName) && byName.has('app/ünïcode.txt'));
  assert.equal(byName.get('long/link')!.link, longTarget);

  // Extended attributes: the capability is there, overlayfs' own are not.
  const verbose = sh('tar', ['--xattrs', '--xattrs-include=*', '-tvvzf', blobFile]);
  assert.doesNotMatch(verbose, /overlay/);
  if (HAVE_SETCAP) {
    assert.match(verbose, /app\/cap\n\s+x: \d+ security\.capability\n/);
    const x = join(base, 'gnu-x');
    mkdirSync(x);
    sh('tar', ['--xattrs', '--xattrs-include=security.capability', '-C', x, '-xzf', blobFile]);
    assert.match(sh('getcap', [join(x, 'app/cap')]), /cap_net_bind_service[=+]ep/);
    assert.equal(readFileSync(join(x, paxName), 'utf8'), 'pax');
  } else t.diagnostic('setcap not installed: capability round trip not checked');

  // The real consumer: lower layer + this layer through Hangar's applier
  // must give exactly what the overlay showed.
  const lowerBlob = join(base, 'lower.tar.gz');
  await writeLayerBlob(ov.lower, lowerBlob);
  const applied = join(base, 'applied');
  applyLayers(applied, [lowerBlob, blobFile]);
  merged.delete('app/sock');
  assert.deepEqual(snapshot(applied), merged);
  if (HAVE_SETCAP) assert.match(sh('getcap', [join(applied, 'app/cap')]), /cap_net_bind_service[=+]ep/);
});

test('deterministic: the same tree gives the same digest; the gzip level changes only the digest', async (t) => {
  const base = tempDir(t);
  const dir = join(base, 'd');
  mkdirSync(join(dir, 'a/b'), { recursive: true });
  for (let i = 0; i < 50; i++) writeFileSync(join(dir, `a/b/f${(i * 7919) % 50}`), `content ${i}\n`.repeat(i));
  writeFileSync(join(dir, 'z'), 'z');
  writeFileSync(join(dir, '-dash'), 'sorts before "." and "/"');
  // Several deflate chunks (1 MiB each), compressible and not.
  writeFileSync(join(dir, 'mixed'), Buffer.concat([randomBytes(1 << 20), Buffer.alloc(2 << 20, 'abc'), randomBytes(3 << 20)]));
  const one = await writeLayerBlob(dir, join(base, '1.tgz'));
  checkIdentity(one, join(base, '1.tgz'));
  sh('gzip', ['-t', join(base, '1.tgz')]); // CRC and length in the trailer
  const two = await writeLayerBlob(dir, join(base, '2.tgz'));
  assert.deepEqual(one, two);
  assert.deepEqual(readFileSync(join(base, '1.tgz')), readFileSync(join(base, '2.tgz')));
  const nine = await writeLayerBlob(dir, join(base, '9.tgz'), { gzipLevel: 9 });
  checkIdentity(nine, join(base, '9.tgz'));
  assert.equal(nine.diffId, one.diffId);
  assert.ok(nine.size <= one.size);
  // Overwrites an existing file.
  writeFileSync(join(base, 'x.tgz'), Buffer.alloc(100_000, 1));
  const three = await writeLayerBlob(dir, join(base, 'x.tgz'));
  assert.equal(three.digest, one.digest);
  assert.equal(statSync(join(base, 'x.tgz')).size, one.size);
  // A symlink to the layer directory serialises the directory.
  symlinkSync(dir, join(base, 'via-link'));
  assert.equal((await writeLayerBlob(join(base, 'via-link'), join(base, 'l.tgz'))).digest, one.digest);
  // An empty directory is an empty (but valid) layer.
  mkdirSync(join(base, 'empty'));
  const empty = await writeLayerBlob(join(base, 'empty'), join(base, 'e.tgz'));
  checkIdentity(empty, join(base, 'e.tgz'));
  assert.equal(empty.entries, 0);
  assert.equal(gunzipSync(readFileSync(join(base, 'e.tgz'))).length, 1024);
});

test('PAX records: big ids, times before 1970 and after 2242, escaped names and xattrs from getfattr', async (t) => {
  const base = tempDir(t);
  const dir = join(base, 'd');
  mkdirSync(dir);
  const weird = ['new\nline', 'back\\slash', 'sp ace', 'tab\tx', 'eq=sign', '\\012', 'ünï'];
  for (const n of weird) {
    writeFileSync(join(dir, n), n);
    sh('setfattr', ['-n', 'user.name', '-v', `0x${Buffer.from(n).toString('hex')}`, join(dir, n)]);
  }
  sh('setfattr', ['-n', 'user.bin', '-v', '0x00ff0a3d5c', join(dir, 'sp ace')]);
  sh('setfattr', ['-n', 'user.empty', join(dir, 'sp ace')]);
  writeFileSync(join(dir, 'bigid'), 'x');
  sh('chown', ['3000000:4000000', join(dir, 'bigid')]);
  writeFileSync(join(dir, 'old'), 'x');
  sh('touch', ['-d', '@-86401', join(dir, 'old')]);
  writeFileSync(join(dir, 'future'), 'x');
  sh('touch', ['-d', '@9000000000', join(dir, 'future')]);
  // Long non-ASCII names: PAX, with a ustar fallback cut at a character boundary.
  const longUtf8 = `${'x'.repeat(99)}${'ü'.repeat(60)}`;
  writeFileSync(join(dir, longUtf8), 'u');
  symlinkSync(longUtf8, join(dir, 'ulink'));
  mkdirSync(join(dir, 'c'.repeat(255)));
  writeFileSync(join(dir, 'c'.repeat(255), 'd'.repeat(255)), 'deep');

  const file = join(base, 'l.tgz');
  const blob = await writeLayerBlob(dir, file);
  checkIdentity(blob, file);
  const entries = hangarEntries(file);
  assert.equal(entries.length, blob.entries);
  const get = (n: string) => entries.find((e) => e.name === n)!;
  for (const n of weird) {
    const e = get(n);
    assert.ok(e, `entry ${JSON.stringify(n)}`);
    assert.equal(e.xattrs.get('user.name')?.toString('utf8'), n, `xattr of ${JSON.stringify(n)}`);
  }
  assert.deepEqual(get('sp ace').xattrs.get('user.bin'), Buffer.from('00ff0a3d5c', 'hex'));
  assert.equal(get('bigid').uid, 3000000);
  assert.equal(get('bigid').gid, 4000000);
  assert.equal(get('old').mtime, -86401);
  assert.equal(get('future').mtime, 9000000000);
  assert.equal(get(`${'c'.repeat(255)}/${'d'.repeat(255)}`).size, 4);
  assert.equal(get(longUtf8).size, 1);
  assert.equal(get('ulink').linkname, longUtf8);

  // GNU tar agrees, extracting names, ids, times and the content byte for byte.
  const x = join(base, 'x');
  mkdirSync(x);
  sh('tar', ['--xattrs', '--xattrs-include=user.*', '--numeric-owner', '-C', x, '-xzf', file]);
  for (const n of weird) {
    assert.equal(readFileSync(join(x, n), 'utf8'), n);
    assert.equal(sh('getfattr', ['--only-values', '-n', 'user.name', join(x, n)]), n);
  }
  assert.equal(lstatSync(join(x, 'bigid')).uid, 3000000);
  assert.equal(lstatSync(join(x, 'bigid')).gid, 4000000);
  assert.equal(Math.floor(lstatSync(join(x, 'old')).mtimeMs / 1000), -86401);
  assert.equal(Math.floor(lstatSync(join(x, 'future')).mtimeMs / 1000), 9000000000);
  assert.equal(readFileSync(join(x, 'c'.repeat(255), 'd'.repeat(255)), 'utf8'), 'deep');
  assert.equal(readFileSync(join(x, 'ulink'), 'utf8'), 'u');
});

test('sizes of 8 GiB and more get a PAX size record that GNU tar and Hangar read back', () => {
  // Streaming 8 GiB of a sparse file through gzip takes about a minute here,
  // so the header is checked on its own: both readers list the entry first.
  const size = 0o77777777777 + 2; // 8 GiB + 1
  const header = encodeHeader({ name: 'huge.img', type: 'file', mode: 0o644, uid: 0, gid: 0, size, mtime: 1_700_000_000 });
  let seen: TarHeader | undefined;
  const p = new TarParser({ entry: (h) => (seen = h), data: () => {}, endEntry: () => {} });
  p.write(header);
  assert.equal(seen?.size, size);
  assert.equal(seen?.name, 'huge.img');
  const r = spawnSync('tar', ['--numeric-owner', '-tvf', '-'], { input: header, encoding: 'utf8' });
  assert.match(r.stdout, new RegExp(`^-rw-r--r-- 0/0\\s+${size} .* huge\\.img\\n`));
  // A size that fits stays in the ustar field (no PAX header).
  assert.equal(encodeHeader({ name: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0o77777777777, mtime: 0 }).length, 512);
});

test('refuses what a layer cannot hold, leaving no output file', async (t) => {
  const base = tempDir(t);
  const cases: [string, (d: string) => void, RegExp][] = [
    ['a file named like a whiteout', (d) => writeFileSync(join(d, '.wh.sneaky'), ''), /\.wh\.sneaky.*whiteout markers/],
    ['a name that is not UTF-8', (d) => writeFileSync(Buffer.from(`${d}/bad\xff`, 'latin1'), ''), /not valid UTF-8/],
    [
      'an xattr name with "="',
      (d) => {
        writeFileSync(join(d, 'f'), '');
        sh('setfattr', ['-n', 'user.a=b', '-v', '1', join(d, 'f')]);
      },
      /user\.a=b/,
    ],
    [
      'a metacopy file',
      (d) => {
        writeFileSync(join(d, 'f'), '');
        sh('setfattr', ['-n', 'trusted.overlay.metacopy', '-v', '0x00', join(d, 'f')]);
      },
      /metacopy=off/,
    ],
  ];
  for (const [what, make, message] of cases) {
    const dir = mkdtempSync(join(base, 'case-'));
    make(dir);
    const out = join(base, 'out.tgz');
    await assert.rejects(writeLayerBlob(dir, out), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'LAYER_UNREPRESENTABLE', what);
      assert.match(err.message, message, what);
      return true;
    });
    assert.equal(existsSync(out), false, `${what}: no output file left`);
  }
  await assert.rejects(writeLayerBlob(join(base, 'missing'), join(base, 'o.tgz')), /does not exist/);
  writeFileSync(join(base, 'plain'), '');
  await assert.rejects(writeLayerBlob(join(base, 'plain'), join(base, 'o.tgz')), /is not a directory/);
});

test('an abort signal stops the write and removes the output file', async (t) => {
  const base = tempDir(t);
  const dir = join(base, 'd');
  mkdirSync(dir);
  // 48 MiB of poorly compressible data: long enough to abort in the middle.
  writeFileSync(join(dir, 'big'), randomBytes(48 << 20));
  const out = join(base, 'o.tgz');
  const ac = new AbortController();
  const p = writeLayerBlob(dir, out, { signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(p, { name: 'AbortError' });
  assert.equal(existsSync(out), false);
  const pre = AbortSignal.abort();
  await assert.rejects(writeLayerBlob(dir, out, { signal: pre }), { name: 'AbortError' });
  assert.equal(existsSync(out), false);
});

test('a small layer costs a few milliseconds', async (t) => {
  const base = tempDir(t);
  const dir = join(base, 'd');
  mkdirSync(join(dir, 'app'), { recursive: true });
  writeFileSync(join(dir, 'app/server.py'), 'print("hello")\n'.repeat(20));
  writeFileSync(join(dir, 'app/requirements.txt'), 'flask\n');
  const times: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t0 = performance.now();
    await writeLayerBlob(dir, join(base, 'o.tgz'));
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const median = times[7]!;
  t.diagnostic(`3-entry layer: median ${median.toFixed(1)} ms, min ${times[0]!.toFixed(1)} ms (includes the getfattr spawn)`);
  // The fastest run, with a generous bound: the machine is shared with other
  // work, but a regression to tens of ms per small layer still fails.
  assert.ok(times[0]! < 50, `fastest of 15 runs took ${times[0]} ms`);
});

test('a full disk fails the write cleanly (no crash, no partial file)', async (t) => {
  const base = tempDir(t);
  const dir = join(base, 'd');
  mkdirSync(dir);
  writeFileSync(join(dir, 'big'), randomBytes(4 << 20));
  const small = join(base, 'small');
  mkdirSync(small);
  sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
  defer(t, () => void spawnSync('umount', ['-l', small]));
  const out = join(small, 'o.tgz');
  await assert.rejects(writeLayerBlob(dir, out), /ENOSPC|no space/i);
  assert.equal(existsSync(out), false);
});
