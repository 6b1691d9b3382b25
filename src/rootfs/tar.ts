/**
 * A push-style streaming tar reader: feed decompressed bytes with write(),
 * get entries and their data through a synchronous TarSink. It never buffers
 * file bodies (they are handed on as slices of the incoming chunks), so a
 * layer is read exactly once.
 *
 * Formats: POSIX ustar (with prefix), old GNU (long names 'L', long links
 * 'K', base-256 numbers), PAX extended headers ('x' per entry, 'g' global)
 * including SCHILY.xattr.* and size/mtime/uid/gid overrides, v7.
 *
 * It is deliberately strict: a bad checksum, a truncated header or body, an
 * oversized metadata record or an unsupported entry type is an error, never a
 * guess. The caller wraps TarFormatError with the layer digest.
 */

export class TarFormatError extends Error {
  override name = 'TarFormatError';
}

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'dir' | 'fifo';

export interface TarHeader {
  /** Path as written in the archive (after PAX / GNU long-name overrides). */
  name: string;
  linkname: string;
  type: TarEntryType;
  size: number;
  /** Permission bits including setuid/setgid/sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch (fractional when PAX says so). */
  mtime: number;
  devmajor: number;
  devminor: number;
  /** Extended attributes from PAX SCHILY.xattr.* records (raw values). */
  xattrs: Map<string, Buffer>;
}

export interface TarSink {
  entry(header: TarHeader): void;
  /** Body bytes of the current 'file' entry (slices of the input; copy to keep). */
  data(chunk: Buffer): void;
  endEntry(): void;
}

export interface TarParserOptions {
  /** Largest PAX / GNU long-name record accepted (bytes). */
  maxMetaBytes?: number;
}

const BLOCK = 512;

type State = 'header' | 'body' | 'meta' | 'skip' | 'padding' | 'end';

export class TarParser {
  private state: State = 'header';
  private readonly hdr = Buffer.alloc(BLOCK);
  private hdrFill = 0;
  private remaining = 0;
  private padding = 0;
  private metaKind: 'x' | 'g' | 'L' | 'K' = 'x';
  private metaChunks: Buffer[] = [];
  private paxLocal = new Map<string, Buffer>();
  private paxGlobal = new Map<string, Buffer>();
  private longName: string | undefined;
  private longLink: string | undefined;
  private sawZeroBlock = false;
  private readonly maxMeta: number;
  /** Number of entries handed to the sink. */
  entries = 0;

  constructor(
    private readonly sink: TarSink,
    options: TarParserOptions = {},
  ) {
    this.maxMeta = options.maxMetaBytes ?? 1 << 20;
  }

  get ended(): boolean {
    return this.state === 'end';
  }

  write(chunk: Buffer): void {
    let off = 0;
    const len = chunk.length;
    while (off < len) {
      switch (this.state) {
        case 'end':
          // Bytes after the end-of-archive marker are ignored, as GNU tar does.
          return;
        case 'header': {
          const n = Math.min(BLOCK - this.hdrFill, len - off);
          if (this.hdrFill === 0 && n === BLOCK) {
            this.onHeader(chunk.subarray(off, off + BLOCK));
          } else {
            chunk.copy(this.hdr, this.hdrFill, off, off + n);
            this.hdrFill += n;
            if (this.hdrFill === BLOCK) {
              this.hdrFill = 0;
              this.onHeader(this.hdr);
            }
          }
          off += n;
          break;
        }
        case 'body': {
          const n = Math.min(this.remaining, len - off);
          this.sink.data(chunk.subarray(off, off + n));
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.finishBody();
          break;
        }
        case 'meta': {
          const n = Math.min(this.remaining, len - off);
          this.metaChunks.push(Buffer.from(chunk.subarray(off, off + n)));
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.finishMeta();
          break;
        }
        case 'skip': {
          const n = Math.min(this.remaining, len - off);
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.finishBody();
          break;
        }
        case 'padding': {
          const n = Math.min(this.padding, len - off);
          off += n;
          this.padding -= n;
          if (this.padding === 0) this.state = 'header';
          break;
        }
      }
    }
  }

  /** Call at end of input: throws if the archive stopped in the middle of something. */
  end(): void {
    if (this.state === 'end') return;
    if (this.state === 'header' && this.hdrFill === 0) {
      // A clean EOF at a header boundary (no or a partial end marker) is
      // accepted like Go's archive/tar does, but only if at least one entry or
      // end block was read: an empty stream is not a tar.
      if (this.entries === 0 && !this.sawZeroBlock) throw new TarFormatError('the layer is empty (not a tar archive)');
      if (this.longName !== undefined || this.longLink !== undefined || this.paxLocal.size > 0)
        throw new TarFormatError('archive ends after an extended header without its entry (truncated)');
      this.state = 'end';
      return;
    }
    if (this.state === 'padding') throw new TarFormatError('archive is truncated (inside block padding)');
    if (this.state === 'header') throw new TarFormatError('archive is truncated (inside a header block)');
    throw new TarFormatError(`archive is truncated (${this.remaining} bytes of an entry missing)`);
  }

  private onHeader(block: Buffer): void {
    if (isZero(block)) {
      if (this.sawZeroBlock) this.state = 'end';
      this.sawZeroBlock = true;
      return;
    }
    if (this.sawZeroBlock) throw new TarFormatError('a zero block is followed by more headers (corrupt archive)');
    if (!checksumOk(block)) {
      throw new TarFormatError(
        this.entries === 0 && this.paxLocal.size === 0 && this.longName === undefined
          ? 'not a tar archive (the first header has a bad checksum)'
          : `corrupt tar header after entry ${this.entries} (bad checksum)`,
      );
    }
    const typeflag = block[156] === 0 ? '0' : String.fromCharCode(block[156]!);
    const size = readNumber(block, 124, 12, 'size');
    if (size > Number.MAX_SAFE_INTEGER) throw new TarFormatError('entry size is too large');

    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (size > this.maxMeta) throw new TarFormatError(`extended header of ${size} bytes exceeds the ${this.maxMeta}-byte limit`);
      this.metaKind = typeflag;
      this.metaChunks = [];
      this.remaining = size;
      this.padding = pad(size);
      this.state = 'meta';
      if (size === 0) this.finishMeta();
      return;
    }

    const magic = block.toString('latin1', 257, 263);
    const isUstar = magic === 'ustar\0';
    let name = cstring(block, 0, 100);
    if (isUstar) {
      const prefix = cstring(block, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    let linkname = cstring(block, 157, 100);
    let type: TarEntryType;
    switch (typeflag) {
      case '0':
      case '7':
        type = 'file';
        break;
      case '1':
        type = 'hardlink';
        break;
      case '2':
        type = 'symlink';
        break;
      case '3':
        type = 'chardev';
        break;
      case '4':
        type = 'blockdev';
        break;
      case '5':
        type = 'dir';
        break;
      case '6':
        type = 'fifo';
        break;
      default:
        throw new TarFormatError(`unsupported tar entry type '${printable(typeflag)}' for ${JSON.stringify(name)}`);
    }
    // Old tars mark directories only with a trailing slash.
    if (type === 'file' && name.endsWith('/')) type = 'dir';

    const h: TarHeader = {
      name,
      linkname,
      type,
      size,
      mode: readNumber(block, 100, 8, 'mode') & 0o7777,
      uid: readNumber(block, 108, 8, 'uid'),
      gid: readNumber(block, 116, 8, 'gid'),
      mtime: readNumber(block, 136, 12, 'mtime'),
      devmajor: type === 'chardev' || type === 'blockdev' ? readNumber(block, 329, 8, 'devmajor') : 0,
      devminor: type === 'chardev' || type === 'blockdev' ? readNumber(block, 337, 8, 'devminor') : 0,
      xattrs: new Map(),
    };
    if (this.longName !== undefined) h.name = this.longName;
    if (this.longLink !== undefined) h.linkname = this.longLink;
    this.applyPax(h, this.paxGlobal);
    this.applyPax(h, this.paxLocal);
    this.longName = undefined;
    this.longLink = undefined;
    this.paxLocal = new Map();
    if (h.name.includes('\0') || h.linkname.includes('\0')) throw new TarFormatError('entry name contains a NUL byte');
    if (h.name === '') throw new TarFormatError('entry with an empty name');

    this.entries++;
    this.sink.entry(h);
    this.remaining = h.size;
    this.padding = pad(h.size);
    if (h.size === 0) this.finishBody();
    else this.state = type === 'file' ? 'body' : 'skip';
  }

  private finishBody(): void {
    this.sink.endEntry();
    this.state = this.padding > 0 ? 'padding' : 'header';
  }

  private finishMeta(): void {
    const data = Buffer.concat(this.metaChunks);
    this.metaChunks = [];
    if (this.metaKind === 'L' || this.metaKind === 'K') {
      const s = utf8(data.subarray(0, data.indexOf(0) === -1 ? data.length : data.indexOf(0)), 'GNU long name');
      if (this.metaKind === 'L') this.longName = s;
      else this.longLink = s;
    } else {
      parsePax(data, this.metaKind === 'g' ? this.paxGlobal : this.paxLocal);
    }
    this.state = this.padding > 0 ? 'padding' : 'header';
  }

  private applyPax(h: TarHeader, pax: Map<string, Buffer>): void {
    for (const [key, value] of pax) {
      if (key.startsWith('SCHILY.xattr.')) {
        h.xattrs.set(key.slice('SCHILY.xattr.'.length), value);
        continue;
      }
      switch (key) {
        case 'path':
          h.name = utf8(value, 'PAX path');
          break;
        case 'linkpath':
          h.linkname = utf8(value, 'PAX linkpath');
          break;
        case 'size':
          h.size = paxInt(value, key);
          break;
        case 'uid':
          h.uid = paxInt(value, key);
          break;
        case 'gid':
          h.gid = paxInt(value, key);
          break;
        case 'mtime': {
          const s = value.toString('latin1');
          if (!/^-?\d+(\.\d+)?$/.test(s)) throw new TarFormatError(`bad PAX mtime ${JSON.stringify(s)}`);
          h.mtime = Number(s);
          break;
        }
        default:
          if (key.startsWith('GNU.sparse.')) throw new TarFormatError('sparse files in layers are not supported');
        // Other keys (atime, ctime, uname, gname, comment, charset...) carry nothing Hangar needs.
      }
    }
  }
}

function pad(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function isZero(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

function checksumOk(block: Buffer): boolean {
  const stored = readOctal(block, 148, 8);
  if (stored === undefined) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

function readOctal(block: Buffer, off: number, len: number): number | undefined {
  let i = off;
  const end = off + len;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i++;
  if (i === end) return 0;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = block[i]!;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) return undefined;
    v = v * 8 + (c - 0x30);
    digits++;
  }
  for (; i < end; i++) if (block[i] !== 0x20 && block[i] !== 0) return undefined;
  return digits ? v : 0;
}

function readNumber(block: Buffer, off: number, len: number, what: string): number {
  const first = block[off]!;
  if (first & 0x80) {
    // GNU base-256: big-endian two's complement; negative values are refused.
    if (first === 0xff) throw new TarFormatError(`negative ${what} in tar header`);
    let v = first & 0x7f;
    for (let i = 1; i < len; i++) {
      v = v * 256 + block[off + i]!;
      if (v > Number.MAX_SAFE_INTEGER) throw new TarFormatError(`${what} in tar header is too large`);
    }
    return v;
  }
  const v = readOctal(block, off, len);
  if (v === undefined) throw new TarFormatError(`bad ${what} field in tar header`);
  return v;
}

function cstring(block: Buffer, off: number, len: number): string {
  const end = block.indexOf(0, off);
  const stop = end === -1 || end > off + len ? off + len : end;
  return utf8(block.subarray(off, stop), 'entry name');
}

const decoder = new TextDecoder('utf-8', { fatal: true });
function utf8(b: Buffer, what: string): string {
  try {
    return decoder.decode(b);
  } catch {
    throw new TarFormatError(`${what} is not valid UTF-8`);
  }
}

function paxInt(value: Buffer, key: string): number {
  const s = value.toString('latin1');
  if (!/^\d{1,16}$/.test(s) || Number(s) > Number.MAX_SAFE_INTEGER) throw new TarFormatError(`bad PAX ${key} ${JSON.stringify(s)}`);
  return Number(s);
}

function printable(s: string): string {
  return /^[\x20-\x7e]$/.test(s) ? s : `\\x${s.charCodeAt(0).toString(16).padStart(2, '0')}`;
}

/** PAX records: "<len> <key>=<value>\n", len counting the whole record. */
function parsePax(data: Buffer, into: Map<string, Buffer>): void {
  let off = 0;
  while (off < data.length) {
    if (data[off] === 0) break; // some writers pad with NULs
    const sp = data.indexOf(0x20, off);
    if (sp === -1 || sp - off > 20) throw new TarFormatError('malformed PAX record (no length)');
    const lenStr = data.toString('latin1', off, sp);
    if (!/^\d+$/.test(lenStr)) throw new TarFormatError('malformed PAX record length');
    const recLen = Number(lenStr);
    if (recLen <= sp - off + 1 || off + recLen > data.length || data[off + recLen - 1] !== 0x0a)
      throw new TarFormatError('malformed PAX record (bad length)');
    const rec = data.subarray(sp + 1, off + recLen - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new TarFormatError('malformed PAX record (no key)');
    const key = utf8(rec.subarray(0, eq), 'PAX key');
    const value = Buffer.from(rec.subarray(eq + 1));
    // An empty value deletes the key (POSIX), e.g. a global path override.
    if (value.length === 0) into.delete(key);
    else into.set(key, value);
    off += recLen;
  }
}
