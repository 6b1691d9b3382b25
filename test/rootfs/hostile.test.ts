/**
 * Hostile layers. Every case runs the full conversion (OCI layout → cache →
 * tree → EROFS) with the tree unpacked next to a sentinel directory, and
 * proves that nothing outside the tree root was created, changed or deleted.
 * Names no builder produces are refused with an error naming the layer;
 * writes through symlinks are contained inside the root (resolved as the
 * guest will see them), never followed out of it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { RootfsCache } from '../../src/rootfs/index.js';
import { HangarError } from '../../src/shared/errors.js';
import { ociLayoutStore, writeOciImage, type LayerInput } from '../fixtures/oci-layout.js';
import { makeTar, type TarEntry } from '../fixtures/tar-writer.js';
import { mountErofs, snapshot, tempDir } from './helpers.js';

interface Ctx {
  dir: string;
  sentinel: string;
  /** from the tree root (<dir>/scratch/hangar-rootfs-*\/root) up to <dir>. */
  up: string;
}

type Layers = (TarEntry[] | LayerInput)[];
type Result = { ok: true; mounted: string } | { ok: false; error: HangarError; layerDigests: string[] };

async function convert(
  layersOrFn: Layers | ((ctx: Ctx) => Layers),
  checkOrFn: ((r: Result) => void) | ((ctx: Ctx) => (r: Result) => void),
  limits?: { maxExpandedBytes?: number; maxEntries?: number },
  tamper?: (layout: string, layerDigests: string[]) => void,
) {
  const t = tempDir();
  try {
    const sentinel = join(t.dir, 'sentinel');
    mkdirSync(join(sentinel, 'dir'), { recursive: true });
    writeFileSync(join(sentinel, 'secret'), 'do not touch');
    writeFileSync(join(sentinel, 'dir', 'file'), 'nor this');
    symlinkSync('secret', join(sentinel, 'link'));
    const scratch = join(t.dir, 'scratch');
    mkdirSync(scratch);
    const ctx: Ctx = { dir: t.dir, sentinel, up: '../../..' };
    const before = snapshot(sentinel);
    const hostPasswd = statSync('/etc/passwd');
    const layout = join(t.dir, 'layout');
    const layers = typeof layersOrFn === 'function' ? layersOrFn(ctx) : layersOrFn;
    const img = writeOciImage(layout, {
      tag: 'evil',
      layers: layers.map((l) => (Array.isArray(l) ? { tar: makeTar(l) } : l)),
    });
    tamper?.(layout, img.layerDigests);
    const check = (isCtxFn(checkOrFn) ? checkOrFn(ctx) : checkOrFn) as (r: Result) => void;
    const cache = new RootfsCache({ dataDir: join(t.dir, 'data'), localStore: ociLayoutStore(layout), scratchDir: scratch, limits });
    let result: Result;
    let unmount = () => {};
    try {
      const got = await cache.acquire('app:evil');
      const m = mountErofs(got.imagePath, join(t.dir, 'mnt'));
      unmount = m.unmount;
      result = { ok: true, mounted: m.dir };
    } catch (e) {
      if (!(e instanceof HangarError)) throw e;
      result = { ok: false, error: e, layerDigests: img.layerDigests };
    }
    try {
      check(result);
    } finally {
      unmount();
    }
    assert.deepEqual(snapshot(sentinel), before, 'nothing outside the root changed');
    assert.deepEqual(readdirSync(t.dir).sort(), ['data', 'layout', 'mnt', 'scratch', 'sentinel'].filter((n) => n !== 'mnt' || result.ok), 'nothing new next to the root');
    assert.deepEqual(readdirSync(scratch), [], 'the tree is removed');
    assert.deepEqual(readdirSync(join(t.dir, 'data', 'rootfs', 'tmp')), [], 'no half-built cache entry');
    if (!result.ok) assert.deepEqual(readdirSync(join(t.dir, 'data', 'rootfs', 'images')), [], 'no cache entry for a failed conversion');
    const after = statSync('/etc/passwd');
    assert.equal(after.mtimeMs, hostPasswd.mtimeMs);
    assert.equal(after.nlink, hostPasswd.nlink);
  } finally {
    t.cleanup();
  }
}

function refused(code: string, pattern: RegExp, layer = 0) {
  return (r: Result) => {
    assert.equal(r.ok, false, 'conversion must fail');
    if (r.ok) return;
    assert.equal(r.error.code, code, r.error.message);
    assert.ok(r.error.message.includes(r.layerDigests[layer]!), `message names the layer digest: ${r.error.message}`);
    assert.match(r.error.message, pattern);
  };
}

function contained(paths: { inside: string; content?: string }[]) {
  return (r: Result) => {
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    if (!r.ok) return;
    for (const p of paths) {
      assert.ok(existsSync(join(r.mounted, p.inside)), `${p.inside} exists inside the image`);
      if (p.content !== undefined) assert.equal(readFileSync(join(r.mounted, p.inside), 'utf8'), p.content);
    }
  };
}

// ---- absolute paths and .. traversal: refused -------------------------------------------

for (const name of ['/etc/hangar-pwned', '////tmp/hangar-pwned', '/../hangar-pwned']) {
  test(`absolute entry name ${name} is refused`, () =>
    convert([[{ name, body: 'x' }]], refused('UNSAFE_LAYER', /absolute path/)));
}

for (const name of ['../../../sentinel/pwned', 'a/../../../../sentinel/pwned', './../pwned', 'a/b/../../../pwned']) {
  test(`traversal entry name ${name} is refused`, () =>
    convert([[{ name: 'a/', type: 'dir' }, { name, body: 'x' }]], refused('UNSAFE_LAYER', /"\.\." component/)));
}

test('the second layer is named when it is the bad one', () =>
  convert([[{ name: 'ok', body: 'x' }], [{ name: '../pwned', body: 'x' }]], refused('UNSAFE_LAYER', /layer 2 of 2/, 1)));

// ---- writes through symlinks that point outside: contained -------------------------------

test('write through an absolute symlink to outside lands inside the root', () =>
  convertWith(
    (ctx) => [[{ name: 'esc', type: 'symlink', linkname: ctx.sentinel }, { name: 'esc/pwned', body: 'in' }]],
    (ctx) => contained([{ inside: `${ctx.sentinel}/pwned`, content: 'in' }]),
  ));

test('write through a relative symlink climbing out lands inside the root', () =>
  convertWith(
    (ctx) => [[{ name: 'esc', type: 'symlink', linkname: `${ctx.up}/sentinel` }, { name: 'esc/pwned', body: 'in' }]],
    () => contained([{ inside: 'sentinel/pwned', content: 'in' }]),
  ));

test('write through chained symlinks and dir/../.. targets stays inside', () =>
  convertWith(
    (ctx) => [
      [
        { name: 'd/', type: 'dir' },
        { name: 'l1', type: 'symlink', linkname: 'l2' },
        { name: 'l2', type: 'symlink', linkname: `d/../../../../${ctx.up}/sentinel/dir` },
        { name: 'l1/pwned', body: 'chained' },
        { name: 'up', type: 'symlink', linkname: 'd/../..' },
        { name: 'up/sentinel/pwned2', body: 'dotdot' },
      ],
    ],
    () => contained([{ inside: 'sentinel/dir/pwned', content: 'chained' }, { inside: 'sentinel/pwned2', content: 'dotdot' }]),
  ));

test('a later layer replacing a directory with a symlink, then writing through it, stays inside', () =>
  convertWith(
    (ctx) => [
      [{ name: 'dir/', type: 'dir' }, { name: 'dir/a', body: 'a' }],
      [{ name: 'dir', type: 'symlink', linkname: ctx.sentinel }, { name: 'dir/pwned', body: 'x' }],
      [{ name: 'dir/dir/file', body: 'overwrite?' }],
    ],
    (ctx) => contained([{ inside: `${ctx.sentinel}/pwned` }, { inside: `${ctx.sentinel}/dir/file`, content: 'overwrite?' }]),
  ));

test('a symlink loop is refused', () =>
  convert([[{ name: 'a', type: 'symlink', linkname: 'a' }, { name: 'a/x', body: 'x' }]], refused('UNSAFE_LAYER', /too many levels of symbolic links/)));

// ---- hard links ----------------------------------------------------------------------------

test('hard link to ../../etc/passwd is refused', () =>
  convert([[{ name: 'h', type: 'hardlink', linkname: '../../etc/passwd' }]], refused('UNSAFE_LAYER', /hard link target .*"\.\." component/)));

test('hard link to /etc/passwd is refused', () =>
  convert([[{ name: 'h', type: 'hardlink', linkname: '/etc/passwd' }]], refused('UNSAFE_LAYER', /absolute path/)));

test('hard link through a symlinked directory cannot reach outside files', () =>
  convertWith(
    (ctx) => [[{ name: 'esc', type: 'symlink', linkname: ctx.sentinel }, { name: 'h', type: 'hardlink', linkname: 'esc/secret' }]],
    () => refused('UNSAFE_LAYER', /does not exist/),
  ));

test('hard link to a symlink pointing outside, then chmod (CVE-2021-32760 pattern), changes nothing outside', () =>
  convertWith(
    (ctx) => [
      [
        { name: 's', type: 'symlink', linkname: `${ctx.sentinel}/secret` },
        { name: 'r', type: 'symlink', linkname: `${ctx.up}/sentinel/secret` },
        { name: 'h', type: 'hardlink', linkname: 's', mode: 0o4777 },
        { name: 'h2', type: 'hardlink', linkname: 'r', mode: 0o4777 },
      ],
      [
        { name: 'h', type: 'dir', mode: 0o4777 },
        { name: 'h2', body: 'replaced', mode: 0o4777 },
      ],
    ],
    () => (r) => {
      assert.ok(r.ok);
      if (!r.ok) return;
      assert.ok(lstatSync(join(r.mounted, 'h')).isDirectory());
      assert.equal(readFileSync(join(r.mounted, 'h2'), 'utf8'), 'replaced');
      assert.ok(lstatSync(join(r.mounted, 's')).isSymbolicLink());
    },
  ));

// ---- whiteouts -----------------------------------------------------------------------------

for (const name of ['.wh..', '.wh...', 'dir/.wh..', '.wh.']) {
  test(`whiteout ${JSON.stringify(name)} is refused`, () =>
    convert([[{ name: 'dir/', type: 'dir' }, { name: 'dir/keep', body: 'k' }], [{ name, body: '' }]], refused('UNSAFE_LAYER', /invalid whiteout/, 1)));
}

test('a whiteout of a symlink removes the link, never its target', () =>
  convertWith(
    (ctx) => [
      [
        { name: 'abs', type: 'symlink', linkname: `${ctx.sentinel}/secret` },
        { name: 'rel', type: 'symlink', linkname: `${ctx.up}/sentinel/dir` },
        { name: 'keep', body: 'k' },
      ],
      [{ name: '.wh.abs' }, { name: '.wh.rel' }],
    ],
    () => (r) => {
      assert.ok(r.ok);
      if (!r.ok) return;
      assert.equal(existsSync(join(r.mounted, 'abs')), false);
      assert.equal(existsSync(join(r.mounted, 'rel')), false);
      assert.ok(existsSync(join(r.mounted, 'keep')));
    },
  ));

test('whiteouts and opaque markers under a symlinked parent stay inside', () =>
  convertWith(
    (ctx) => [
      [
        { name: 'esc', type: 'symlink', linkname: ctx.sentinel },
        { name: 'rel', type: 'symlink', linkname: `${ctx.up}/sentinel` },
      ],
      [{ name: 'esc/.wh.secret' }, { name: 'rel/.wh.dir' }, { name: 'rel/.wh..wh..opq' }, { name: 'esc/dir/.wh..wh..opq' }],
    ],
    () => (r) => assert.ok(r.ok, r.ok ? '' : r.error.message),
  ));

// ---- node-tar CVE patterns -----------------------------------------------------------------

test('directory cache poisoned by a symlink (CVE-2021-32803) stays inside', () =>
  convertWith(
    (ctx) => [
      [
        { name: 'x/', type: 'dir' },
        { name: 'x/a', body: 'a' },
        { name: 'x', type: 'symlink', linkname: ctx.sentinel },
        { name: 'x/pwned', body: 'p' },
      ],
    ],
    (ctx) => contained([{ inside: `${ctx.sentinel}/pwned`, content: 'p' }]),
  ));

test('symlink with a trailing-slash name replacing a directory (CVE-2021-37701) stays inside', () =>
  convertWith(
    (ctx) => [
      [
        { name: 'foo/', type: 'dir' },
        { name: 'foo/', type: 'symlink', linkname: `${ctx.up}/sentinel` },
        { name: 'foo/pwned', body: 'p' },
        { name: 'bar\\', type: 'symlink', linkname: ctx.sentinel },
        { name: 'bar\\/pwned2', body: 'q' },
      ],
    ],
    (ctx) => contained([{ inside: 'sentinel/pwned', content: 'p' }, { inside: `${ctx.sentinel}/pwned2`, content: 'q' }]),
  ));

test('unicode look-alike names (CVE-2021-37712) stay inside', () =>
  convertWith(
    (ctx) => [
      [
        { name: '\u00e9/', type: 'dir' },
        { name: 'e\u0301', type: 'symlink', linkname: ctx.sentinel },
        { name: '\u00e9/a', body: 'nfc' },
        { name: 'e\u0301/pwned', body: 'nfd' },
        { name: '\ufb00', type: 'symlink', linkname: `${ctx.up}/sentinel` },
        { name: 'ff/pwned', body: 'ascii' },
        { name: '\ufb00/pwned3', body: 'lig' },
      ],
    ],
    (ctx) =>
      contained([
        { inside: '\u00e9/a', content: 'nfc' },
        { inside: `${ctx.sentinel}/pwned`, content: 'nfd' },
        { inside: 'ff/pwned', content: 'ascii' },
        { inside: 'sentinel/pwned3', content: 'lig' },
      ]),
  ));

// ---- bombs, corruption, mismatches ---------------------------------------------------------

test('a gzip bomb hits the expanded-size bound', () =>
  convert(
    [{ tar: Buffer.alloc(0), rawBlob: gzipSync(Buffer.concat([makeTar([{ name: 'big', body: Buffer.alloc(8 << 20) }])])) }],
    refused('LAYER_TOO_LARGE', /more than 1048576 bytes/),
    { maxExpandedBytes: 1 << 20 },
  ));

test('an archive of zeros after the end marker still counts toward the bound', () =>
  convert([{ tar: Buffer.alloc(0), rawBlob: gzipSync(Buffer.alloc(16 << 20)) }], refused('LAYER_TOO_LARGE', /decompression bomb/), {
    maxExpandedBytes: 1 << 20,
  }));

test('too many entries hits the entry-count bound', () =>
  convert(
    [Array.from({ length: 200 }, (_, i) => ({ name: `f${i}`, body: '' }))],
    refused('LAYER_TOO_LARGE', /more than 100 entries/),
    { maxEntries: 100 },
  ));

test('a truncated archive fails cleanly', () => {
  const tar = makeTar([{ name: 'a', body: randomBytes(5000) }, { name: 'b', body: 'x' }]);
  return convert([{ tar: tar.subarray(0, 2000) }], refused('BAD_LAYER', /truncated/));
});

test('a truncated gzip stream fails cleanly', () => {
  const gz = gzipSync(makeTar([{ name: 'a', body: randomBytes(50_000) }]));
  return convert([{ tar: Buffer.alloc(0), rawBlob: gz.subarray(0, gz.length - 5000) }], refused('BAD_LAYER', /compressed stream is corrupt/));
});

test('a corrupt gzip stream fails cleanly', () => {
  const gz = Buffer.from(gzipSync(makeTar([{ name: 'a', body: randomBytes(50_000) }])));
  for (let i = 100; i < 200; i++) gz[i] = gz[i]! ^ 0x5a;
  return convert([{ tar: Buffer.alloc(0), rawBlob: gz }], refused('BAD_LAYER', /corrupt|not a valid tar/));
});

test('a corrupt zstd stream fails cleanly', () => {
  const tar = makeTar([{ name: 'a', body: randomBytes(50_000) }]);
  return convert([{ tar, compression: 'zstd', rawBlob: Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), randomBytes(3000)]) }], refused('BAD_LAYER', /compressed stream is corrupt/));
});

test('a layer that is not a tar at all fails cleanly', () =>
  convert([{ tar: Buffer.alloc(0), rawBlob: gzipSync(Buffer.from('<html>this is not a tar archive</html>\n'.repeat(40))) }], refused('BAD_LAYER', /not a tar archive/)));

test('a blob that does not match its digest fails and leaves nothing behind', () =>
  convert(
    [{ tar: makeTar([{ name: 'a', body: 'x' }]), digestOverride: `sha256:${'0'.repeat(64)}` }],
    (r: Result) => {
      // The blob file does not exist under the lying digest: the store reports it missing.
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.equal(r.error.code, 'BLOB_NOT_FOUND');
      assert.ok(r.error.message.includes(r.layerDigests[0]!));
    },
  ));

test('a blob whose content was swapped fails digest verification', () =>
  convert([{ tar: makeTar([{ name: 'a', body: 'original' }]), compression: 'none' }], refused('DIGEST_MISMATCH', /hashes to sha256:/), undefined, (layout, digests) => {
    const p = join(layout, 'blobs', 'sha256', digests[0]!.slice(7));
    writeFileSync(p, makeTar([{ name: 'a', body: 'tampered' }]));
  }));

test('a blob longer than its descriptor says fails verification', () =>
  convert([{ tar: makeTar([{ name: 'a', body: 'x' }]), compression: 'none' }], refused('DIGEST_MISMATCH', /larger than/), undefined, (layout, digests) => {
    const p = join(layout, 'blobs', 'sha256', digests[0]!.slice(7));
    writeFileSync(p, Buffer.concat([readFileSync(p), Buffer.alloc(512)]));
  }));

// Cases whose entries need the sentinel's path.
function convertWith(layersFor: (ctx: Ctx) => Layers, checkFor: (ctx: Ctx) => (r: Result) => void): Promise<void> {
  return convert(layersFor, ctxFn(checkFor));
}

const CTX_FN = Symbol('ctxFn');
function ctxFn(f: (ctx: Ctx) => (r: Result) => void) {
  return Object.assign(f, { [CTX_FN]: true });
}
function isCtxFn(f: unknown): f is (ctx: Ctx) => (r: Result) => void {
  return typeof f === 'function' && (f as unknown as Record<symbol, boolean>)[CTX_FN] === true;
}
