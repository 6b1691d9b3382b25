/**
 * bench/rootfs: time Hangar's image → EROFS conversion against the pipeline a
 * user would script: skopeo copy (registry → OCI layout) + umoci unpack +
 * mkfs.erofs (and, for reference, mke2fs -d on the same tree).
 *
 * The image: Debian bookworm minbase + python3, pip, git (mmdebstrap, ~300 MB,
 * 14k files) in two gzip layers, served by docker-registry on 127.0.0.1. Both
 * sides pull from that registry. Runs alternate; medians are printed and the
 * last line is one JSON object.
 *
 *   bash bench/rootfs/run.sh [runs]     (builds the image once into .cache/bench/)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RootfsCache } from '../../src/rootfs/index.js';
import { ociLayoutStore, writeOciImage } from '../../test/fixtures/oci-layout.js';
import { pushLayout, startRegistry } from '../../test/fixtures/registry.js';

const root = process.env.HANGAR_ROOT ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const cacheDir = join(root, '.cache', 'bench');
const tree = join(cacheDir, 'debian-python3-tree');
const layout = join(cacheDir, 'debian-python3-oci');
const runs = Number(process.argv[2] ?? 5);
const work = process.env.BENCH_WORKDIR ?? join(root, '.cache', 'bench-work');

function log(msg: string) {
  process.stderr.write(`${msg}\n`);
}

function ensureImage(): void {
  if (!existsSync(tree)) {
    log('bench: building the Debian + python3 tree with mmdebstrap (once; a minute or two)...');
    mkdirSync(cacheDir, { recursive: true });
    execFileSync('mmdebstrap', ['--variant=minbase', '--include=python3,python3-pip,git,ca-certificates', 'bookworm', `${tree}.tmp`, 'http://deb.debian.org/debian'], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    execFileSync('mv', [`${tree}.tmp`, tree]);
  }
  if (!existsSync(join(layout, 'index.json'))) {
    log('bench: packing the tree into a two-layer OCI image (once)...');
    const python = ['./usr/lib/python3', './usr/lib/python3.11'];
    const tar = (args: string[]) =>
      execFileSync('tar', ['--format=pax', '--numeric-owner', '--sort=name', '-C', tree, '-cf', '-', ...args], { maxBuffer: 2 * 1024 ** 3 });
    const base = tar([...python.map((p) => `--exclude=${p}`), '.']);
    const py = tar(python);
    writeOciImage(layout, {
      tag: 'bench',
      layers: [{ tar: base }, { tar: py }],
      config: { Cmd: ['python3'], Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
    });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function timeCmd(file: string, args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(file, args, { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed: ${r.stderr}`);
  return performance.now() - t0;
}

function dropCaches(): void {
  // Page cache state should not favour either side: sync and drop before each run when allowed.
  spawnSync('sync');
  spawnSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' });
}

async function main() {
  ensureImage();
  const files = Number(execFileSync('sh', ['-c', `find '${tree}' | wc -l`], { encoding: 'utf8' }).trim());
  const treeMb = Number(execFileSync('du', ['-sm', tree], { encoding: 'utf8' }).split('\t')[0]);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const reg = await startRegistry();
  try {
    pushLayout(layout, 'bench', `${reg.host}/bench/debian-python3:1`);
    const ref = `${reg.host}/bench/debian-python3:1`;
    const hangar: number[] = [];
    const warm: number[] = [];
    const warmDigest: number[] = [];
    const warmLocal: number[] = [];
    const pipe: number[] = [];
    const parts = { skopeo: [] as number[], umoci: [] as number[], erofs: [] as number[], mke2fs: [] as number[] };
    let imageBytes = 0;
    for (let i = 0; i < runs; i++) {
      const order = i % 2 === 0 ? ['hangar', 'pipeline'] : ['pipeline', 'hangar'];
      for (const side of order) {
        dropCaches();
        // BENCH_PIPELINE_TMPFS=1: give the pipeline the same tmpfs advantage Hangar's scratch tree has.
        const base = side === 'pipeline' && process.env.BENCH_PIPELINE_TMPFS === '1' ? '/dev/shm' : work;
        const dir = mkdtempSync(join(base, `hangar-bench-${side}-`));
        if (side === 'hangar') {
          const cache = new RootfsCache({ dataDir: dir });
          const t0 = performance.now();
          const got = await cache.acquire(ref);
          hangar.push(performance.now() - t0);
          imageBytes = got.sizeBytes;
          got.lease.release();
          const w0 = performance.now();
          const again = await cache.acquire(ref);
          warm.push(performance.now() - w0);
          again.lease.release();
          // The same image pinned by digest: no registry round trip at all.
          const d0 = performance.now();
          (await cache.acquire(`${reg.host}/bench/debian-python3@${got.digest}`)).lease.release();
          warmDigest.push(performance.now() - d0);
          // The same image in Hangar's own registry (content store read as files): what a deploy hits.
          const local = new RootfsCache({ dataDir: dir, localStore: ociLayoutStore(layout), localRegistryHosts: ['hangar.local:5000'] });
          const l0 = performance.now();
          const viaLocal = await local.acquire('hangar.local:5000/bench/debian-python3:bench');
          warmLocal.push(performance.now() - l0);
          if (viaLocal.converted || viaLocal.digest !== got.digest) throw new Error('local-store warm path missed the cache');
          viaLocal.lease.release();
        } else {
          const s = timeCmd('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${dir}/layout:bench`]);
          const u = timeCmd('umoci', ['unpack', '--image', `${dir}/layout:bench`, `${dir}/bundle`]);
          const e = timeCmd('mkfs.erofs', ['--quiet', `${dir}/rootfs.erofs`, `${dir}/bundle/rootfs`]);
          pipe.push(s + u + e);
          parts.skopeo.push(s);
          parts.umoci.push(u);
          parts.erofs.push(e);
          if (i === 0) {
            const sizeMb = Math.ceil((treeMb * 1.4 + 64) / 4) * 4;
            parts.mke2fs.push(timeCmd('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', `${dir}/bundle/rootfs`, `${dir}/rootfs.ext4`, `${sizeMb}M`]));
          }
        }
        rmSync(dir, { recursive: true, force: true });
        log(`run ${i + 1}/${runs} ${side}: ${side === 'hangar' ? `${hangar.at(-1)!.toFixed(0)} ms (warm ${warm.at(-1)!.toFixed(1)} ms)` : `${pipe.at(-1)!.toFixed(0)} ms`}`);
      }
    }
    const m = (xs: number[]) => Math.round(median(xs));
    const result = {
      bench: 'rootfs',
      image: `debian bookworm minbase + python3/pip/git: ${files} files, ${treeMb} MB, 2 gzip layers`,
      runs,
      pipeline_on_tmpfs: process.env.BENCH_PIPELINE_TMPFS === '1',
      hangar_cold_ms: m(hangar),
      pipeline_ms: m(pipe),
      skopeo_ms: m(parts.skopeo),
      umoci_unpack_ms: m(parts.umoci),
      mkfs_erofs_ms: m(parts.erofs),
      mke2fs_d_ms: parts.mke2fs.length ? m(parts.mke2fs) : null,
      pipeline_with_mke2fs_ms: parts.mke2fs.length ? m(parts.skopeo) + m(parts.umoci) + m(parts.mke2fs) : null,
      cold_ratio: Number((median(pipe) / median(hangar)).toFixed(2)),
      warm_ms: Number(median(warm).toFixed(2)),
      warm_digest_ms: Number(median(warmDigest).toFixed(2)),
      warm_local_store_ms: Number(median(warmLocal).toFixed(2)),
      erofs_mb: Number((imageBytes / 1e6).toFixed(1)),
    };
    console.log(
      `median hangar cold: ${result.hangar_cold_ms} ms   warm: ${result.warm_ms} ms (same tag, 1 manifest GET), ${result.warm_digest_ms} ms (by digest), ${result.warm_local_store_ms} ms (Hangar's own store)`,
    );
    console.log(
      `median pipeline:    ${result.pipeline_ms} ms  (skopeo ${result.skopeo_ms} + umoci unpack ${result.umoci_unpack_ms} + mkfs.erofs ${result.mkfs_erofs_ms}; mke2fs -d instead of mkfs.erofs: ${result.mke2fs_d_ms} ms)`,
    );
    console.log(JSON.stringify(result));
  } finally {
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
