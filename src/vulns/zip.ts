import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { crc32, inflateRawSync } from 'node:zlib';
import { HangarError } from '../shared/errors.js';

export interface ZipEntry {
  name: string;
  size: number;
  compressedSize: number;
  method: number;
  crc: number;
  localOffset: number;
}

export interface ZipLimits {
  /** Largest uncompressed entry accepted (an OSV record is a few KiB; some are a few MiB). */
  maxEntryBytes: number;
  maxEntries: number;
}

const DEFAULT_LIMITS: ZipLimits = { maxEntryBytes: 64 * 1024 * 1024, maxEntries: 5_000_000 };

function bad(path: string, what: string): HangarError {
  return new HangarError('VULNDB_BAD_ZIP', `${path} is not a usable zip archive: ${what}`);
}

/** Names that would land outside an extraction directory are refused even though we never extract. */
export function isSafeZipName(name: string): boolean {
  if (name === '' || name.includes('\0') || name.includes('\\')) return false;
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return false;
  return !name.split('/').includes('..');
}

/**
 * Minimal zip reader: central directory (zip64 aware), stored and deflated
 * entries, CRC-checked. Reads with positioned reads, so a large OSV export
 * never sits in memory whole.
 */
export class ZipReader {
  readonly entries: ZipEntry[];
  private readonly fd: number;
  private readonly fileSize: number;

  constructor(
    private readonly path: string,
    private readonly limits: ZipLimits = DEFAULT_LIMITS,
  ) {
    this.fd = openSync(path, 'r');
    try {
      this.fileSize = fstatSync(this.fd).size;
      this.entries = this.readDirectory();
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  close(): void {
    closeSync(this.fd);
  }

  private pread(pos: number, len: number): Buffer {
    if (pos < 0 || len < 0 || pos + len > this.fileSize) throw bad(this.path, `a record points outside the file (offset ${pos}, ${len} bytes)`);
    const b = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const n = readSync(this.fd, b, got, len - got, pos + got);
      if (n === 0) throw bad(this.path, 'unexpected end of file');
      got += n;
    }
    return b;
  }

  private readDirectory(): ZipEntry[] {
    const tailLen = Math.min(this.fileSize, 22 + 65535);
    if (tailLen < 22) throw bad(this.path, 'file too short');
    const tail = this.pread(this.fileSize - tailLen, tailLen);
    let eocd = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === 0x06054b50) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw bad(this.path, 'no end-of-central-directory record (not a zip file, or truncated)');
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    const eocdAbs = this.fileSize - tailLen + eocd;
    if (eocdAbs >= 20) {
      const loc = this.pread(eocdAbs - 20, 20);
      if (loc.readUInt32LE(0) === 0x07064b50) {
        const z = this.pread(Number(loc.readBigUInt64LE(8)), 56);
        if (z.readUInt32LE(0) !== 0x06064b50) throw bad(this.path, 'broken zip64 end record');
        count = Number(z.readBigUInt64LE(32));
        cdSize = Number(z.readBigUInt64LE(40));
        cdOffset = Number(z.readBigUInt64LE(48));
      }
    }
    if (count > this.limits.maxEntries) throw bad(this.path, `${count} entries is more than the ${this.limits.maxEntries} allowed`);
    const cd = this.pread(cdOffset, cdSize);
    const entries: ZipEntry[] = [];
    let p = 0;
    for (let n = 0; n < count; n++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50) throw bad(this.path, `central directory entry ${n + 1} is damaged`);
      const flags = cd.readUInt16LE(p + 8);
      const method = cd.readUInt16LE(p + 10);
      const crc = cd.readUInt32LE(p + 16);
      let compressedSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let localOffset = cd.readUInt32LE(p + 42);
      if (p + 46 + nameLen + extraLen + commentLen > cd.length) throw bad(this.path, `central directory entry ${n + 1} is damaged`);
      const name = cd.toString(flags & 0x800 ? 'utf8' : 'latin1', p + 46, p + 46 + nameLen);
      const extra = cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen);
      for (let e = 0; e + 4 <= extra.length; ) {
        const id = extra.readUInt16LE(e);
        const len = extra.readUInt16LE(e + 2);
        if (id === 0x0001) {
          let q = e + 4;
          const next = () => {
            const v = Number(extra.readBigUInt64LE(q));
            q += 8;
            return v;
          };
          if (size === 0xffffffff) size = next();
          if (compressedSize === 0xffffffff) compressedSize = next();
          if (localOffset === 0xffffffff) localOffset = next();
        }
        e += 4 + len;
      }
      if (!isSafeZipName(name)) {
        throw new HangarError('VULNDB_BAD_ZIP', `${this.path} contains an entry named "${name}" that escapes the archive root (zip-slip); refusing the whole archive`);
      }
      if (flags & 1) throw bad(this.path, `entry ${name} is encrypted`);
      entries.push({ name, size, compressedSize, method, crc, localOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
    return entries;
  }

  /** Uncompressed contents of an entry, size-bounded and CRC-checked. */
  read(e: ZipEntry): Buffer {
    if (e.size > this.limits.maxEntryBytes) {
      throw new HangarError('TOO_LARGE', `${this.path}: entry ${e.name} is ${e.size} bytes, above the ${this.limits.maxEntryBytes}-byte limit`);
    }
    const lh = this.pread(e.localOffset, 30);
    if (lh.readUInt32LE(0) !== 0x04034b50) throw bad(this.path, `local header of ${e.name} is damaged`);
    const start = e.localOffset + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
    const raw = this.pread(start, e.compressedSize);
    let data: Buffer;
    if (e.method === 0) data = raw;
    else if (e.method === 8) {
      try {
        // The declared size is checked against the output, so a lying header cannot balloon memory.
        data = inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
      } catch (err) {
        throw bad(this.path, `entry ${e.name} does not inflate (${(err as Error).message})`);
      }
    } else throw bad(this.path, `entry ${e.name} uses compression method ${e.method}; only stored and deflate are supported`);
    if (data.length !== e.size) throw bad(this.path, `entry ${e.name} inflates to ${data.length} bytes, header says ${e.size}`);
    if ((crc32(data) >>> 0) !== e.crc) throw bad(this.path, `entry ${e.name} fails its CRC check`);
    return data;
  }
}
