import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, openSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { RootfsCache } from '../../src/rootfs/index.js';
import { writeBusyboxImage } from '../fixtures/busybox-image.js';
import { ociLayoutStore } from '../fixtures/oci-layout.js';
import { makeTar } from '../fixtures/tar-writer.js';
import { mountErofs, snapshot, tempDir } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));

test('concurrent requests for one image convert it once', async () => {
  const t2 = tempDir();
  try {
    const layout = join(t2.dir, 'layout');
    writeBusyboxImage(layout);
    const cache = new RootfsCache({ dataDir: join(t2.dir, 'data'), localStore: ociLayoutStore(layout) });
    const all = await Promise.all([cache.acquire('app'), cache.acquire('app:latest'), cache.acquire('app')]);
    assert.equal(all.filter((r) => r.converted).length, 1);
    assert.equal(new Set(all.map((r) => r.imagePath)).size, 1);
    assert.equal(readdirSync(join(t2.dir, 'data', 'rootfs', 'images')).length, 1);
    for (const r of all) r.lease.release();
  } finally {
    t2.cleanup();
  }
});

test('LRU eviction within the budget never takes an image that is in use', async () => {
  const t = tempDir();
  try {
    const layout = join(t.dir, 'layout');
    for (const tag of ['a', 'b', 'c'])
      writeBusyboxImage(layout, { tag, extraLayers: [{ tar: makeTar([{ name: `etc/which`, body: tag }]) }] });
    const probe = new RootfsCache({ dataDir: join(t.dir, 'probe'), localStore: ociLayoutStore(layout) });
    const one = await probe.acquire('app:a');
    const size = one.sizeBytes;
    const cache = new RootfsCache({ dataDir: join(t.dir, 'data'), localStore: ociLayoutStore(layout), budgetBytes: Math.floor(size * 2.5) });

    const a = await cache.acquire('app:a'); // held: in use by a machine
    const b = await cache.acquire('app:b');
    b.lease.release();
    await sleep(20);
    const c = await cache.acquire('app:c');
    c.lease.release();
    // a is least recently used but leased, so b goes.
    assert.deepEqual(new Set(cache.list().map((e) => e.digest)), new Set([a.digest, c.digest]));
    assert.ok(existsSync(a.imagePath));
    assert.equal(existsSync(b.imagePath), false);

    a.lease.release();
    a.lease.release(); // idempotent
    await sleep(20);
    const b2 = await cache.acquire('app:b');
    assert.equal(b2.converted, true);
    b2.lease.release();
    // now a is the least recently used and free: it goes.
    assert.deepEqual(cache.list().map((e) => e.digest), [c.digest, b.digest]);
    assert.deepEqual(readdirSync(join(t.dir, 'data', 'rootfs', 'tmp')), []);
  } finally {
    t.cleanup();
  }
});

/** Replace a layer blob by a FIFO so a conversion blocks mid-layer until the test feeds it. */
function fifoBlob(layout: string, digest: string): { path: string; bytes: Buffer } {
  const path = join(layout, 'blobs', 'sha256', digest.slice(7));
  const bytes = readFileSync(path);
  rmSync(path);
  execFileSync('mkfifo', [path]);
  return { path, bytes };
}

function child(dataDir: string, layout: string, ref: string): { proc: ChildProcess; lines: string[]; started: Promise<void>; done: Promise<number> } {
  const proc = spawn(process.execPath, [join(here, 'cache-child.js'), dataDir, layout, ref], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let onStart!: () => void;
  const started = new Promise<void>((r) => (onStart = r));
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    lines.push(...d.split('\n').filter(Boolean));
    if (lines.length) onStart();
  });
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const done = new Promise<number>((r) => proc.on('close', (code) => r(code ?? (err ? -1 : -2))));
  return { proc, lines, started, done };
}

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(20);
  }
}

test('two processes sharing a data dir convert an image once (lock file)', async () => {
  const t = tempDir();
  try {
    const layout = join(t.dir, 'layout');
    const img = writeBusyboxImage(layout);
    const fifo = fifoBlob(layout, img.layerDigests[0]!);
    const dataDir = join(t.dir, 'data');
    const c1 = child(dataDir, layout, 'app');
    const c2 = child(dataDir, layout, 'app');
    await Promise.all([c1.started, c2.started]);
    const locks = join(dataDir, 'rootfs', 'locks');
    await waitFor(() => existsSync(locks) && readdirSync(locks).some((n) => n.endsWith('.lock')));
    await sleep(500); // let the second process reach the lock and wait on it
    const fd = openSync(fifo.path, 'w');
    writeSync(fd, fifo.bytes);
    closeSync(fd);
    assert.deepEqual(await Promise.all([c1.done, c2.done]), [0, 0]);
    const results = [c1, c2].map((c) => JSON.parse(c.lines[c.lines.length - 1]!) as { converted: boolean; imagePath: string });
    assert.equal(results.filter((r) => r.converted).length, 1, JSON.stringify(results));
    assert.equal(results[0]!.imagePath, results[1]!.imagePath);
    assert.deepEqual(readdirSync(locks), []);
  } finally {
    t.cleanup();
  }
});

test('a crash mid-conversion leaves nothing that looks complete, and the next start cleans up', async () => {
  const t = tempDir();
  try {
    const layout = join(t.dir, 'layout');
    const img = writeBusyboxImage(layout);
    const fifo = fifoBlob(layout, img.layerDigests[0]!);
    const dataDir = join(t.dir, 'data');
    const c = child(dataDir, layout, 'app');
    await c.started;
    const tmp = join(dataDir, 'rootfs', 'tmp');
    await waitFor(() => existsSync(tmp) && readdirSync(tmp).length > 0);
    const fd = openSync(fifo.path, 'w');
    writeSync(fd, fifo.bytes.subarray(0, fifo.bytes.length >> 1)); // half a layer...
    await sleep(300);
    c.proc.kill('SIGKILL'); // ...then the daemon dies
    await c.done;
    closeSync(fd);
    const pid = c.proc.pid!;
    assert.deepEqual(readdirSync(join(dataDir, 'rootfs', 'images')), [], 'no entry appears');
    assert.ok(readdirSync(tmp).length > 0, 'the crashed build left only a tmp dir');
    assert.ok(readdirSync('/dev/shm').some((n) => n.startsWith(`hangar-rootfs-${pid}-`)), 'and its scratch tree');

    rmSync(fifo.path);
    writeFileSync(fifo.path, fifo.bytes);
    const cache = new RootfsCache({ dataDir, localStore: ociLayoutStore(layout) });
    const got = await cache.acquire('app');
    assert.equal(got.converted, true);
    assert.deepEqual(readdirSync(tmp), [], 'leftovers of the dead process are swept');
    assert.equal(readdirSync('/dev/shm').some((n) => n.startsWith(`hangar-rootfs-${pid}-`)), false);
    assert.deepEqual(readdirSync(join(dataDir, 'rootfs', 'locks')), [], 'the stale lock was taken over and released');
    got.lease.release();
  } finally {
    t.cleanup();
  }
});

test('aborting an acquire stops the conversion and leaves no entry', async () => {
  const t = tempDir();
  try {
    const layout = join(t.dir, 'layout');
    const img = writeBusyboxImage(layout);
    const fifo = fifoBlob(layout, img.layerDigests[0]!);
    const dataDir = join(t.dir, 'data');
    const cache = new RootfsCache({ dataDir, localStore: ociLayoutStore(layout), scratchDir: join(t.dir) });
    const ac = new AbortController();
    const p = cache.acquire('app', { signal: ac.signal });
    const tmp = join(dataDir, 'rootfs', 'tmp');
    await waitFor(() => readdirSync(tmp).length > 0);
    // feed a little so the worker is mid-layer, then cancel
    const fd = openSync(fifo.path, 'w');
    writeSync(fd, fifo.bytes.subarray(0, 4096));
    ac.abort();
    await assert.rejects(p, (e: Error & { code?: string }) => e.code === 'ABORTED' && /cancelled/.test(e.message));
    // the conversion itself stops (worker terminated) and cleans up after itself
    await waitFor(() => readdirSync(tmp).length === 0);
    closeSync(fd);
    assert.deepEqual(readdirSync(join(dataDir, 'rootfs', 'images')), []);
    assert.deepEqual(readdirSync(t.dir).filter((n) => n.startsWith('hangar-rootfs-')), [], 'scratch tree removed');
    // and the image converts fine afterwards
    rmSync(fifo.path);
    writeFileSync(fifo.path, fifo.bytes);
    // One waiter giving up does not cancel a conversion another waiter still wants.
    rmSync(fifo.path);
    execFileSync('mkfifo', [fifo.path]);
    const quitter = new AbortController();
    const a = cache.acquire('app', { signal: quitter.signal });
    const b = cache.acquire('app');
    await sleep(300); // both have resolved the manifest and joined the one conversion
    quitter.abort();
    await assert.rejects(a, (e: Error & { code?: string }) => e.code === 'ABORTED');
    const fd2 = openSync(fifo.path, 'w');
    writeSync(fd2, fifo.bytes);
    closeSync(fd2);
    const got = await b;
    assert.equal(got.converted, false, 'b joined the shared conversion');
    assert.ok(existsSync(got.imagePath));
    got.lease.release();
  } finally {
    t.cleanup();
  }
});

/** How many lower layers a conversion took from a kept tree (its image.json stats). */
const reusedLayers = (imagePath: string) => JSON.parse(readFileSync(join(dirname(imagePath), 'image.json'), 'utf8')).stats.reusedLayers as number;

test('a redeploy unpacks only its new top layers: the kept lower tree is cloned, never changed', async () => {
  const t = tempDir();
  const mounts: Array<{ unmount: () => void }> = [];
  try {
    const layout = join(t.dir, 'layout');
    // Three images on one base layer. B replaces a base file, one name of the
    // base's hard-linked busybox, and whites out another base file; C only adds a file.
    writeBusyboxImage(layout, { tag: 'a', extraLayers: [{ tar: makeTar([{ name: 'etc/which', body: 'a' }]) }] });
    writeBusyboxImage(layout, {
      tag: 'b',
      extraLayers: [{ tar: makeTar([{ name: 'etc/passwd', body: 'changed by b\n' }, { name: 'bin/sh', body: 'not a shell' }, { name: 'etc/.wh.hostname' }]) }],
    });
    writeBusyboxImage(layout, { tag: 'c', extraLayers: [{ tar: makeTar([{ name: 'etc/which', body: 'c' }]) }] });
    const scratch = join(t.dir, 'scratch');
    mkdirSync(scratch);
    const options = { localStore: ociLayoutStore(layout), scratchDir: scratch, keepMinLayerBytes: 10_000 };
    const cache = new RootfsCache({ dataDir: join(t.dir, 'data'), ...options });
    const fresh = new RootfsCache({ dataDir: join(t.dir, 'fresh'), ...options, keepTrees: 0 });
    const contents = (imagePath: string, name: string) => {
      const m = mountErofs(imagePath, join(t.dir, 'mnt', name));
      mounts.push(m);
      return snapshot(m.dir);
    };

    const a = await cache.acquire('app:a');
    assert.equal(reusedLayers(a.imagePath), 0);
    const kept = readdirSync(scratch).filter((n) => n.startsWith('hangar-rootfs-kept-'));
    assert.equal(kept.length, 1, 'the tree after the base layer is kept');
    for (const [tag, label] of [['b', 'b'], ['c', 'c (after b changed files of the base)']] as const) {
      const got = await cache.acquire(`app:${tag}`);
      const want = await fresh.acquire(`app:${tag}`);
      assert.equal(reusedLayers(got.imagePath), 1, `${label}: starts from the kept base tree`);
      assert.equal(reusedLayers(want.imagePath), 0);
      assert.deepEqual(contents(got.imagePath, `${tag}-got`), contents(want.imagePath, `${tag}-want`), `${label}: the same filesystem as a full conversion`);
    }
    assert.equal(readFileSync(join(t.dir, 'mnt', 'c-got', 'etc', 'which'), 'utf8'), 'c');
    assert.notEqual(readFileSync(join(t.dir, 'mnt', 'c-got', 'etc', 'passwd'), 'utf8'), 'changed by b\n');
    assert.ok(existsSync(join(t.dir, 'mnt', 'c-got', 'etc', 'hostname')), "b's whiteout did not reach the kept tree");
    assert.notEqual(readFileSync(join(t.dir, 'mnt', 'c-got', 'bin', 'sh')).length, 'not a shell'.length);

    cache.close();
    assert.deepEqual(readdirSync(scratch).filter((n) => n.startsWith('hangar-rootfs-kept-')), [], 'close() drops the kept trees');
  } finally {
    for (const m of mounts.reverse()) m.unmount();
    t.cleanup();
  }
});

test('kept trees: one no conversion used for the idle time is dropped; one over the size cap is never kept', async () => {
  const t = tempDir();
  try {
    const layout = join(t.dir, 'layout');
    writeBusyboxImage(layout, { tag: 'a', extraLayers: [{ tar: makeTar([{ name: 'etc/which', body: 'a' }]) }] });
    const keptIn = (scratch: string) =>
      readdirSync(scratch)
        .filter((n) => n.startsWith('hangar-rootfs-kept-'))
        .flatMap((n) => readdirSync(join(scratch, n)).filter((k) => /^[0-9a-f]{32}$/.test(k)));
    const options = { localStore: ociLayoutStore(layout), keepMinLayerBytes: 10_000 };

    const idleScratch = join(t.dir, 'idle');
    mkdirSync(idleScratch);
    const idle = new RootfsCache({ dataDir: join(t.dir, 'd1'), ...options, scratchDir: idleScratch, keepTreeIdleMs: 300 });
    (await idle.acquire('app:a')).lease.release();
    assert.equal(keptIn(idleScratch).length, 1, 'kept right after the conversion');
    const end = Date.now() + 5_000;
    while (keptIn(idleScratch).length > 0 && Date.now() < end) await sleep(50);
    assert.deepEqual(keptIn(idleScratch), [], 'dropped once idle');
    idle.close();

    const capScratch = join(t.dir, 'cap');
    mkdirSync(capScratch);
    const capped = new RootfsCache({ dataDir: join(t.dir, 'd2'), ...options, scratchDir: capScratch, keepTreeMaxBytes: 10_000 });
    const a = await capped.acquire('app:a');
    assert.deepEqual(keptIn(capScratch), [], 'a base tree larger than the cap is not kept');
    assert.equal(reusedLayers(a.imagePath), 0);
    capped.close();
  } finally {
    t.cleanup();
  }
});

test('a kept tree that anyone else could have written is never used', async () => {
  const t = tempDir();
  try {
    const layout = join(t.dir, 'layout');
    const img = writeBusyboxImage(layout, { tag: 'a', extraLayers: [{ tar: makeTar([{ name: 'etc/which', body: 'a' }]) }] });
    const scratch = join(t.dir, 'scratch');
    mkdirSync(scratch);
    const dataDir = join(t.dir, 'data');
    // Where the cache would look for the tree of the base layer (the names are predictable).
    const id = createHash('sha256').update(join(dataDir, 'rootfs')).digest('hex').slice(0, 16);
    const key = createHash('sha256').update(`${img.layerDigests[0]}\n`).digest('hex').slice(0, 32);
    const planted = join(scratch, `hangar-rootfs-kept-${id}`, key);
    mkdirSync(join(planted, 'tree', 'etc'), { recursive: true });
    writeFileSync(join(planted, 'tree', 'etc', 'planted'), 'injected');
    writeFileSync(join(planted, 'state.json'), JSON.stringify({ layers: 1, expanded: 0, writer: { entries: 0, fileBytes: 0, stats: {}, dirTimes: [] } }));
    chmodSync(join(scratch, `hangar-rootfs-kept-${id}`), 0o777);
    const cache = new RootfsCache({ dataDir, localStore: ociLayoutStore(layout), scratchDir: scratch, keepMinLayerBytes: 10_000 });
    const a = await cache.acquire('app:a');
    assert.equal(reusedLayers(a.imagePath), 0);
    const m = mountErofs(a.imagePath, join(t.dir, 'mnt'));
    try {
      assert.equal(existsSync(join(m.dir, 'etc', 'planted')), false);
      assert.equal(existsSync(join(m.dir, 'bin', 'busybox')), true);
    } finally {
      m.unmount();
    }
  } finally {
    t.cleanup();
  }
});
