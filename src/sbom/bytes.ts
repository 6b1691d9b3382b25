import { HangarError } from '../shared/errors.js';

/**
 * Pull-based reader over an async byte stream. Tar parsing needs "exactly n
 * bytes" and "skip n bytes"; skipping must not buffer a multi-gigabyte layer
 * file we do not care about, so skip drops chunks as they arrive.
 */
export class ByteReader {
  private chunks: Buffer[] = [];
  private avail = 0;
  private ended = false;
  private readonly it: AsyncIterator<Uint8Array>;
  /** Bytes consumed so far (for error messages). */
  offset = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const v = r.value;
    if (v.byteLength === 0) return true;
    const b = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    this.chunks.push(b);
    this.avail += b.length;
    return true;
  }

  /** Exactly n bytes, or null when the stream ends before any byte of them. */
  async read(n: number): Promise<Buffer | null> {
    while (this.avail < n) if (!(await this.pull())) break;
    if (this.avail === 0 && n > 0) return null;
    if (this.avail < n) throw truncated(this.offset + this.avail);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const head = this.chunks[0]!;
      const take = Math.min(head.length, n - filled);
      head.copy(out, filled, 0, take);
      filled += take;
      if (take === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(take);
    }
    this.avail -= n;
    this.offset += n;
    return out;
  }

  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.avail === 0 && !(await this.pull())) throw truncated(this.offset);
      const head = this.chunks[0];
      if (!head) continue;
      const take = Math.min(head.length, left);
      if (take === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(take);
      this.avail -= take;
      this.offset += take;
      left -= take;
    }
  }

  /** Stop reading the underlying stream early (lets a file stream close). */
  async close(): Promise<void> {
    await this.it.return?.();
  }
}

function truncated(at: number): HangarError {
  return new HangarError('SBOM_BAD_LAYER', `layer archive ends unexpectedly at byte ${at}: the layer blob is truncated or corrupt; re-push the image`);
}
