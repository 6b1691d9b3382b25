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

/** Decompress a layer stream (gzip, zstd or plain tar, detected from content). */
export async function* decompressStream(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
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
