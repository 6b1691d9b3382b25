import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { delimiter, join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { Decompress } from 'fzstd';
import { HangarError } from '../shared/errors.js';

export type Compression = 'gzip' | 'zstd' | 'none';

/** Sniff the compression from magic bytes: media types lie often enough (docker vs OCI names) that content decides. */
export function sniffCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

export interface DecompressOptions {
  /**
   * zstd decoder: 'auto' uses the zstd program when it is on PATH (about ten
   * times faster than the pure-JS fzstd here), 'js' forces fzstd, any other
   * string is the path of a zstd binary.
   */
  zstd?: 'auto' | 'js' | string;
}

let zstdOnPath: string | null | undefined;
const existsAbs = (p: string) => p.startsWith('/') && existsSync(p);
function findZstd(): string | null {
  if (zstdOnPath === undefined) {
    zstdOnPath = (process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'zstd')).find(existsAbs) ?? null;
  }
  return zstdOnPath;
}
/** Decompress a layer stream (gzip, zstd or plain tar, detected from content). */
export async function* decompressStream(source: AsyncIterable<Uint8Array>, opts: DecompressOptions = {}): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  try {
    yield* decode(it, opts);
  } finally {
    // The tar reader stops at the end-of-archive marker, usually before the
    // padding: release the source (closes a file stream's descriptor).
    await it.return?.();
  }
}

async function* decode(it: AsyncIterator<Uint8Array>, opts: DecompressOptions): AsyncGenerator<Buffer> {
  const head: Buffer[] = [];
  let headLen = 0;
  let ended = false;
  while (headLen < 4) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    const b = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    head.push(b);
    headLen += b.length;
  }
  const kind = sniffCompression(Buffer.concat(head));
  async function* all(): AsyncGenerator<Buffer> {
    for (const h of head) yield h;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    }
  }
  if (kind === 'none') {
    yield* all();
  } else if (kind === 'gzip') {
    const gunzip = createGunzip();
    const input = Readable.from(all());
    input.on('error', (e) => gunzip.destroy(e));
    input.pipe(gunzip);
    try {
      for await (const chunk of gunzip) yield chunk as Buffer;
    } catch (e) {
      throw corrupt('gzip', e);
    } finally {
      input.destroy();
    }
  } else if ((opts.zstd ?? 'auto') !== 'js' && (opts.zstd && opts.zstd !== 'auto' ? opts.zstd : findZstd())) {
    yield* zstdProcess(all(), opts.zstd && opts.zstd !== 'auto' ? opts.zstd : findZstd()!);
  } else {
    let out: Buffer[] = [];
    const z = new Decompress((chunk) => {
      out.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    });
    let prev: Buffer | undefined;
    // fzstd needs to know which chunk is last, so stay one chunk behind.
    for await (const chunk of all()) {
      if (prev) {
        pushZ(z, prev, false);
        for (const o of out) yield o;
        out = [];
      }
      prev = chunk;
    }
    pushZ(z, prev ?? Buffer.alloc(0), true);
    for (const o of out) yield o;
  }
}

function pushZ(z: Decompress, chunk: Buffer, final: boolean): void {
  try {
    z.push(chunk, final);
  } catch (e) {
    throw corrupt('zstd', e);
  }
}

function corrupt(kind: string, e: unknown): HangarError {
  if (e instanceof HangarError) return e;
  return new HangarError('SBOM_BAD_LAYER', `layer is not valid ${kind} data (${(e as Error).message}); the blob is corrupt, re-push the image`, { cause: e });
}

/** Stream through `zstd -dc`: argv only, killed if the reader stops early. */
async function* zstdProcess(input: AsyncIterable<Buffer>, bin: string): AsyncGenerator<Buffer> {
  const child = spawn(bin, ['-dcq'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  child.stdin.on('error', () => {}); // EPIPE when zstd rejects the data; reported via its exit status
  const exited = new Promise<number>((resolve) => {
    child.on('error', (e) => {
      stderr += e.message;
      resolve(127);
    });
    child.on('close', (code) => resolve(code ?? 1));
  });
  const feeding = (async () => {
    for await (const c of input) {
      if (child.stdin.destroyed) return;
      if (!child.stdin.write(c)) await Promise.race([once(child.stdin, 'drain'), exited]);
    }
    child.stdin.end();
  })();
  feeding.catch(() => child.kill('SIGKILL'));
  try {
    for await (const c of child.stdout) yield c as Buffer;
    await feeding;
    const code = await exited;
    if (code !== 0) throw corrupt('zstd', new Error(stderr.trim() || `zstd exited with status ${code}`));
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}
