/**
 * Resolve an image (manifest → platform → config) and turn its layers into a
 * tree and then an EROFS image. Each layer is read once: the blob stream is
 * hashed, decompressed and parsed as it arrives, and file bodies go straight
 * to their final place in the tree.
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { accessSync, constants as fsConstants, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, type ZlibOptions } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { HangarError } from '../shared/errors.js';
import { run } from '../shared/process.js';
import {
  MAX_CONFIG_BYTES,
  choosePlatform,
  parseImageConfig,
  parseManifest,
  type Descriptor,
  type ImageConfig,
  type Platform,
} from './manifest.js';
import type { ImageSource } from './source.js';
import { ownedPrivateDir, type KeepPlan } from './kept-trees.js';
import type { WorkerInput, WorkerOutput } from './worker.js';
import { isDigest } from './reference.js';
import { TarFormatError, TarParser } from './tar.js';
import { LayerLimitError, TreeWriter, UnsafeEntryError, type TreeLimits, type TreeState } from './apply.js';

export interface ResolvedImage {
  /** Canonical reference that was resolved, e.g. 127.0.0.1:5000/app:v1. */
  reference: string;
  /** Where it came from (Hangar's registry or a remote host). */
  source: string;
  /** Digest of the linux/amd64 image manifest: the cache key. */
  digest: string;
  /** Digest of the index / manifest list the reference pointed at, if any. */
  indexDigest: string | null;
  mediaType: string;
  platform: Platform;
  config: ImageConfig;
  configDigest: string;
  layers: Descriptor[];
  /** Sum of the (compressed) layer sizes. */
  compressedSize: number;
}

export interface ConvertLimits {
  /** Bytes of decompressed tar over all layers. */
  maxExpandedBytes: number;
  /** Entries over all layers. */
  maxEntries: number;
}

export const DEFAULT_LIMITS: ConvertLimits = { maxExpandedBytes: 16 * 1024 ** 3, maxEntries: 2_000_000 };

class DigestError extends Error {}

export function digestOf(bytes: Buffer, alg = 'sha256'): string {
  return `${alg}:${createHash(alg).update(bytes).digest('hex')}`;
}

function verifyBytes(bytes: Buffer, digest: string, what: string): void {
  const alg = digest.split(':')[0]!;
  if (digestOf(bytes, alg) !== digest)
    throw new HangarError('DIGEST_MISMATCH', `${what}: content does not match its digest ${digest}; the registry served corrupt data, push the image again`, {
      status: 502,
    });
}

export async function resolveImage(
  source: ImageSource,
  reference: string,
  canonical: string,
  signal?: AbortSignal,
  /** Already-converted images by manifest digest: a hit skips fetching the config. */
  known?: (digest: string) => ResolvedImage | undefined,
): Promise<ResolvedImage> {
  const what = canonical;
  const top = await source.fetchManifest(reference, signal);
  const topDigest = digestOf(top.bytes, reference.startsWith('sha512:') ? 'sha512' : 'sha256');
  if (isDigest(reference)) verifyBytes(top.bytes, reference, what);
  let parsed = parseManifest(top.bytes, top.mediaType, what);
  let digest = topDigest;
  let indexDigest: string | null = null;
  if (parsed.kind === 'index') {
    indexDigest = topDigest;
    const chosen = choosePlatform(parsed, what);
    const child = await source.fetchManifest(chosen.digest, signal);
    verifyBytes(child.bytes, chosen.digest, what);
    parsed = parseManifest(child.bytes, child.mediaType ?? chosen.mediaType, what);
    if (parsed.kind !== 'manifest')
      throw new HangarError('BAD_IMAGE', `${what}: an index points at another index; nested indexes are not supported`, { status: 422 });
    digest = chosen.digest;
  }
  const hit = known?.(digest);
  if (hit) return { ...hit, reference: canonical, indexDigest };
  const configBytes = await source.fetchBlob(parsed.config.digest, MAX_CONFIG_BYTES, signal);
  verifyBytes(configBytes, parsed.config.digest, `${what} (config)`);
  const cfg = parseImageConfig(configBytes, what);
  return {
    reference: canonical,
    source: source.name,
    digest,
    indexDigest,
    mediaType: parsed.mediaType,
    platform: cfg.platform,
    config: cfg.config,
    configDigest: parsed.config.digest,
    layers: parsed.layers,
    compressedSize: parsed.layers.reduce((n, l) => n + l.size, 0),
  };
}

export type ZstdMode = 'cli' | 'js';

export interface BuildTreeOptions {
  limits?: ConvertLimits;
  signal?: AbortSignal;
  zstd?: ZstdMode;
  /** 'cli': ISA-L igzip when installed (default); 'js': node:zlib. */
  gzip?: ZstdMode;
  /** `root` is a clone of a tree kept after the image's first `layers` layers: apply only the rest. */
  resume?: KeptTreeState;
  /** After applying layer index `afterLayer`, keep a hard-link clone of the tree in `dir` (see keepTree). */
  keep?: KeepPlan;
}

/** The state file of a kept tree (`<dir>/state.json`, the tree itself in `<dir>/tree`). */
export interface KeptTreeState {
  /** How many of the image's first layers the tree holds. */
  layers: number;
  /** Decompressed bytes those layers counted against the limit. */
  expanded: number;
  writer: TreeState;
}

/** Apply every layer of `image` to the (empty) directory `root`. */
export async function buildTree(source: ImageSource, image: ResolvedImage, root: string, options: BuildTreeOptions = {}) {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const treeLimits: TreeLimits = { maxEntries: limits.maxEntries, maxFileBytes: limits.maxExpandedBytes };
  const writer = new TreeWriter(root, treeLimits);
  const start = options.resume?.layers ?? 0;
  if (options.resume) writer.importState(options.resume.writer);
  const budget = { expanded: options.resume?.expanded ?? 0 };
  try {
    for (let i = start; i < image.layers.length; i++) {
      const layer = image.layers[i]!;
      try {
        writer.beginLayer();
        await applyLayer(source, layer, writer, budget, limits, options);
        writer.endLayer();
      } catch (e) {
        throw layerError(e, layer, i, image.layers.length, image.reference);
      }
      if (options.keep?.afterLayer === i) keepTree(writer, options.keep, { layers: i + 1, expanded: budget.expanded, writer: writer.exportState() });
    }
    writer.finish();
  } finally {
    writer.abort();
  }
  return { ...writer.stats, expandedBytes: budget.expanded, reusedLayers: start };
}

/**
 * Keep the tree as it is after some layers, for the next image that starts
 * with the same layers (a redeploy changes only its top layers): a
 * hard-link clone, so it costs directory entries, not file data. Safe
 * because the applier never writes into an existing file: it replaces,
 * links or removes names, and only touches metadata of what it created.
 * Best effort: a tree that cannot be kept is simply not kept.
 */
function keepTree(writer: TreeWriter, plan: KeepPlan, state: KeptTreeState): void {
  if (state.expanded > plan.maxBytes) return;
  // Directory times are set at the end; the clone must carry the settled ones.
  writer.settleDirTimes();
  const tmp = `${plan.dir}.tmp-${process.pid}-${Date.now()}`;
  try {
    mkdirSync(dirname(plan.dir), { recursive: true, mode: 0o700 });
    if (!ownedPrivateDir(dirname(plan.dir))) return;
    writeFileSync(plan.owner.file, plan.owner.dir);
    mkdirSync(tmp, { mode: 0o700 });
    const r = spawnSync('cp', ['-al', '--', writer.root, `${tmp}/tree`], { stdio: 'ignore' });
    if (r.status !== 0) throw new Error('cp -al failed');
    writeFileSync(`${tmp}/state.json`, JSON.stringify(state));
    renameSync(tmp, plan.dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function applyLayer(
  source: ImageSource,
  layer: Descriptor,
  writer: TreeWriter,
  budget: { expanded: number },
  limits: ConvertLimits,
  options: BuildTreeOptions,
): Promise<void> {
  const signal = options.signal;
  const blob = await source.openBlob(layer.digest, layer.size, signal);
  const alg = layer.digest.split(':')[0]!;
  const hash = createHash(alg);
  let seen = 0;
  async function* verified(): AsyncGenerator<Buffer> {
    for await (const c of blob as AsyncIterable<Buffer>) {
      seen += c.length;
      if (seen > layer.size) throw new DigestError(`the blob is larger than the ${layer.size} bytes the manifest declares`);
      hash.update(c);
      yield c;
    }
    if (seen !== layer.size) throw new DigestError(`the blob ended after ${seen} of ${layer.size} bytes (truncated)`);
    const got = `${alg}:${hash.digest('hex')}`;
    if (got !== layer.digest) throw new DigestError(`its content hashes to ${got}, not to its digest`);
  }
  const parser = new TarParser(writer);
  const feed = (c: Buffer) => {
    budget.expanded += c.length;
    if (budget.expanded > limits.maxExpandedBytes)
      throw new LayerLimitError(`the image expands to more than ${limits.maxExpandedBytes} bytes (limit); it may be a decompression bomb`);
    if (!parser.ended) parser.write(c);
  };
  // The first real error wins: a stage that fails makes pipeline() destroy the
  // others, and what surfaces then may be a generic AbortError.
  let firstError: unknown;
  const consume = async (src: AsyncIterable<Buffer>) => {
    try {
      for await (const c of src) {
        if (signal?.aborted) throw signal.reason;
        feed(c);
      }
    } catch (e) {
      firstError ??= e;
      throw e;
    }
  };

  const gen = verified();
  const first = await gen.next();
  if (first.done) throw new TarFormatError('the layer blob is empty (not a tar archive)');
  const head = first.value;
  const all = async function* () {
    yield head;
    yield* gen;
  };
  const kind = head[0] === 0x1f && head[1] === 0x8b ? 'gzip' : head.readUInt32LE(0) === 0xfd2fb528 ? 'zstd' : 'tar';

  const verifiedAll = async function* () {
    try {
      yield* all();
    } catch (e) {
      firstError ??= e;
      throw e;
    }
  };
  try {
    await decompressInto(kind, verifiedAll, consume, feed, options);
  } catch (e) {
    throw firstError ?? e;
  }
  // Only now is the whole blob verified and decompressed: judge the tar's ending.
  parser.end();
}

async function decompressInto(
  kind: 'gzip' | 'zstd' | 'tar',
  all: () => AsyncGenerator<Buffer>,
  consume: (src: AsyncIterable<Buffer>) => Promise<void>,
  feed: (c: Buffer) => void,
  options: BuildTreeOptions,
): Promise<void> {
  const signal = options.signal;
  if (kind === 'gzip' && (options.gzip ?? (hasTool('igzip') ? 'cli' : 'js')) === 'cli') {
    // ISA-L's igzip decompresses ~4x faster than zlib, in its own process on the other core.
    await cliDecompress('igzip', ['-d', '-c'], all(), consume, signal);
  } else if (kind === 'gzip') {
    await pipeline(Readable.from(all(), { objectMode: false }), createGunzip({ chunkSize: 256 << 10, readableHighWaterMark: 4 << 20 } as ZlibOptions), consume, {
      signal,
    });
  } else if (kind === 'zstd' && (options.zstd ?? 'cli') === 'js') {
    let err: unknown;
    const d = new ZstdDecompress((chunk) => {
      if (err === undefined) {
        try {
          feed(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        } catch (e) {
          err = e;
        }
      }
    });
    for await (const c of all()) {
      d.push(c);
      if (err !== undefined) throw err;
      if (signal?.aborted) throw signal.reason;
    }
    d.push(new Uint8Array(0), true);
    if (err !== undefined) throw err;
  } else if (kind === 'zstd') {
    await cliDecompress('zstd', ['-d', '-c', '-q', '--no-progress'], all(), consume, signal);
  } else {
    await consume(all());
  }
}

/** Decompress through a CLI (argv only): native speed, in parallel with our own work on the other core. */
async function cliDecompress(
  file: string,
  args: string[],
  input: AsyncIterable<Buffer>,
  consume: (src: AsyncIterable<Buffer>) => Promise<void>,
  signal?: AbortSignal,
) {
  const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr: Buffer[] = [];
  child.stderr.on('data', (d: Buffer) => stderr.push(d));
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', (e) =>
      reject(
        (e as NodeJS.ErrnoException).code === 'ENOENT'
          ? new HangarError('MISSING_TOOL', `${file} is not installed; run scripts/setup.sh`, { status: 500 })
          : e,
      ),
    );
    child.on('close', (code) => resolve(code ?? 1));
  });
  try {
    await Promise.all([
      pipeline(Readable.from(input), child.stdin, { signal }),
      consume(child.stdout),
      exited.then((code) => {
        if (code !== 0) throw new ZstdError(`${file}: ${Buffer.concat(stderr).toString().trim() || `exited with ${code}`}`);
      }),
    ]);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

const toolCache = new Map<string, boolean>();
function hasTool(name: string): boolean {
  let v = toolCache.get(name);
  if (v === undefined) {
    v = (process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => {
      try {
        accessSync(`${d}/${name}`, fsConstants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
    toolCache.set(name, v);
  }
  return v;
}

class ZstdError extends Error {}

function layerError(e: unknown, layer: Descriptor, i: number, n: number, image: string): Error {
  const where = `layer ${i + 1} of ${n} (${layer.digest}) of ${image}`;
  const msg = e instanceof Error ? e.message : String(e);
  const detail = { layer: layer.digest };
  if (e instanceof HangarError) return new HangarError(e.code, `${where}: ${e.message}`, { status: e.status, cause: e, detail });
  if (e instanceof UnsafeEntryError)
    return new HangarError('UNSAFE_LAYER', `${where} is unsafe: ${msg}. Hangar refuses such archives; rebuild the image from a trusted base`, {
      status: 422,
      detail,
    });
  if (e instanceof LayerLimitError)
    return new HangarError('LAYER_TOO_LARGE', `${where}: ${msg}`, { status: 413, detail });
  if (e instanceof DigestError)
    return new HangarError('DIGEST_MISMATCH', `${where} failed verification: ${msg}. The registry served corrupt data; push the image again`, {
      status: 502,
      detail,
    });
  if (e instanceof TarFormatError)
    return new HangarError('BAD_LAYER', `${where} is not a valid tar archive: ${msg}. Rebuild and push the image again`, { status: 422, detail });
  const code = (e as NodeJS.ErrnoException)?.code;
  if (e instanceof ZstdError || (typeof code === 'string' && code.startsWith('Z_')) || /zstd|invalid (block|zstd)|unexpected (EOF|end of file)/i.test(msg))
    return new HangarError('BAD_LAYER', `${where}: its compressed stream is corrupt (${msg}). Rebuild and push the image again`, {
      status: 422,
      detail,
    });
  if ((e as Error)?.name === 'AbortError') return new HangarError('ABORTED', `${where}: conversion was cancelled`, { status: 499, cause: e });
  if (code === 'ENOSPC')
    return new HangarError('NO_SPACE', `${where}: out of disk space while unpacking; free space or lower the rootfs cache budget`, {
      status: 507,
      expose: true,
    });
  return new HangarError('INTERNAL', `${where}: unpacking failed: ${msg}`, { status: 500, cause: e, detail });
}

/** Build the read-only image. Uncompressed: under TCG, decompression in the guest costs more than the bytes saved. */
export async function buildErofs(tree: string, out: string, signal?: AbortSignal): Promise<void> {
  await run('mkfs.erofs', ['--quiet', '--preserve-mtime', out, tree], { signal } as never);
}

/**
 * buildTree() in a worker thread, so the caller's event loop stays responsive.
 * Aborting terminates the worker (its decompressor child sees EOF and exits).
 */
export async function buildTreeInWorker(
  source: ImageSource,
  image: ResolvedImage,
  root: string,
  options: BuildTreeOptions = {},
): Promise<Record<string, number>> {
  const { signal, ...rest } = options;
  const input: WorkerInput = { spec: source.workerSpec(image.layers.map((l) => l.digest)), image, root, options: rest };
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: input });
  return new Promise((resolve, reject) => {
    let settled = false;
    const onAbort = () => {
      void worker.terminate();
      finish(() => reject(new HangarError('ABORTED', `conversion of ${image.reference} was cancelled`, { status: 499 })));
    };
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      f();
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (m: WorkerOutput) =>
      finish(() =>
        m.ok ? resolve(m.stats) : reject(new HangarError(m.error.code, m.error.message, { status: m.error.status, detail: m.error.detail })),
      ),
    );
    worker.once('error', (e) => finish(() => reject(new HangarError('INTERNAL', `the unpack worker failed: ${e.message}`, { status: 500, cause: e }))));
    worker.once('exit', (code) =>
      finish(() => reject(new HangarError('INTERNAL', `the unpack worker exited (${code}) without a result`, { status: 500 }))),
    );
  });
}
