/**
 * Serialises a layer directory (an overlayfs upper dir, or a fresh directory
 * a COPY step wrote) as a gzip'd OCI image layer.
 *
 * One pass: a sorted lstat/readdir walk feeds a tar writer, whose output is
 * hashed (diff_id) and deflated in 1 MiB chunks on the libuv thread pool,
 * several at once (deflate is the bulk of the cost of a big layer), while
 * the main thread reads the next files; the compressed stream is hashed
 * (digest) and written to the file. File bodies pass through the chunk
 * buffers, never held whole.
 *
 * Overlay whiteouts become OCI whiteouts: a 0:0 character device becomes an
 * empty `.wh.<name>` file, a directory marked opaque gets a `.wh..wh..opq`
 * entry right after its own. Node has no getxattr, so extended attributes
 * come from one `getfattr -R` per layer, started before the walk so the two
 * overlap.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants as C,
  fsyncSync,
  lstatSync,
  openSync,
  readSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  writeSync,
  type BigIntStats,
} from 'node:fs';
import { resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import * as zlib from 'node:zlib';
import { constants as zlibConstants, deflateRaw } from 'node:zlib';
import { HangarError } from '../../shared/errors.js';
import { encodeHeader, endOfArchive, padding, type EntryHeader } from '../tar-header.js';

export interface LayerBlob {
  /** sha256:… of the compressed blob as written to outFile. */ digest: string;
  /** sha256:… of the uncompressed tar (the image config's rootfs.diff_ids entry). */ diffId: string;
  size: number; // bytes of outFile
  mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip';
  entries: number; // tar entries written
}

export interface WriteLayerOptions {
  /** zlib level; 1 by default: rebuild speed matters more than a few % of size. */
  gzipLevel?: number;
  /** false when the caller wrote the directory itself without extended attributes: skips the getfattr run. */
  xattrs?: boolean;
  signal?: AbortSignal;
}

/** Tar bytes handed to zlib at a time (and the read size for file bodies). */
const CHUNK = 1 << 20;

const S_IFMT = 0o170000n;
const S_IFREG = 0o100000n;
const S_IFDIR = 0o040000n;
const S_IFLNK = 0o120000n;
const S_IFCHR = 0o020000n;
const S_IFBLK = 0o060000n;
const S_IFIFO = 0o010000n;
const S_IFSOCK = 0o140000n;

const OPAQUE_MARKER = '.wh..wh..opq';

function unrepresentable(message: string): HangarError {
  return new HangarError('LAYER_UNREPRESENTABLE', message, { status: 422 });
}

/** Serialise layer directory `dir` as a gzip'd OCI layer into `outFile` (created/overwritten). */
export async function writeLayerBlob(dir: string, outFile: string, options: WriteLayerOptions = {}): Promise<LayerBlob> {
  const { signal } = options;
  const level = options.gzipLevel ?? 1;
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new RangeError(`gzipLevel must be an integer from 0 to 9, not ${level}`);
  signal?.throwIfAborted();
  let root: string;
  try {
    // Real path: getfattr -h would not descend into a symlinked root.
    root = realpathSync(resolve(dir));
  } catch {
    throw new Error(`layer directory ${resolve(dir)} does not exist`);
  }
  if (!lstatSync(root).isDirectory()) throw new Error(`layer directory ${root} is not a directory`);

  const attrs: XattrRead = options.xattrs === false ? { done: Promise.resolve(new Map()), cancel() {} } : readXattrs(root, signal);
  let nodes: Node[];
  try {
    nodes = walk(root);
  } catch (err) {
    attrs.cancel();
    throw err;
  }
  const xattrs = await attrs.done;
  signal?.throwIfAborted();

  const fd = openSync(outFile, 'w', 0o644);
  const gzHash = createHash('sha256');
  let size = 0;
  const sink = (c: Buffer) => {
    gzHash.update(c);
    let off = 0;
    while (off < c.length) off += writeSync(fd, c, off, c.length - off);
    size += c.length;
  };
  try {
    const gz = new ParallelGzip(level, sink, signal);
    const out = new TarOut(gz);
    const entries = await writeEntries(nodes, xattrs, out);
    out.put(endOfArchive());
    await out.flush();
    await gz.end();
    signal?.throwIfAborted();
    fsyncSync(fd);
    return {
      digest: `sha256:${gzHash.digest('hex')}`,
      diffId: `sha256:${out.hash.digest('hex')}`,
      size,
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      entries,
    };
  } catch (err) {
    // Unlinking before the close in `finally` is fine: the name goes now, the inode with the fd.
    rmSync(outFile, { force: true });
    throw signal?.aborted ? signal.reason : err;
  } finally {
    closeSync(fd);
  }
}

interface Node {
  /** Archive path (no trailing slash). */
  rel: string;
  abs: string;
  st: BigIntStats;
}

/**
 * Pre-order walk, children in byte order of their names: parents come before
 * children. A whiteout is emitted where its device sits in this order.
 */
function walk(root: string): Node[] {
  const nodes: Node[] = [];
  const visit = (absDir: string, relDir: string): void => {
    const names = readdirSync(absDir, { encoding: 'buffer' });
    names.sort(Buffer.compare);
    for (const raw of names) {
      const name = utf8Name(raw, relDir);
      const rel = relDir ? `${relDir}/${name}` : name;
      const abs = `${absDir}/${name}`;
      const st = lstatSync(abs, { bigint: true });
      nodes.push({ rel, abs, st });
      if ((st.mode & S_IFMT) === S_IFDIR) visit(abs, rel);
    }
  };
  visit(root, '');
  return nodes;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
function utf8Name(raw: Buffer, relDir: string): string {
  try {
    return strictUtf8.decode(raw);
  } catch {
    throw unrepresentable(
      `the layer has a file name that is not valid UTF-8 (${JSON.stringify(raw.toString('latin1'))} in /${relDir}); image layers need UTF-8 names: rename it in the build step`,
    );
  }
}

async function writeEntries(nodes: Node[], xattrs: Map<string, Map<string, Buffer>>, out: TarOut): Promise<number> {
  let entries = 0;
  /** First archive path of each multiply-linked inode written so far. */
  const links = new Map<string, string>();
  for (const node of nodes) {
    const { rel, abs, st } = node;
    const slash = rel.lastIndexOf('/');
    const base = rel.slice(slash + 1);
    const parent = rel.slice(0, slash + 1); // "" or "dir/"
    const fmt = st.mode & S_IFMT;
    const attrs = xattrs.get(rel);
    const overlay = overlayState(rel, fmt, attrs);

    const common = {
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: seconds(st.mtimeNs),
    };
    if ((fmt === S_IFCHR && st.rdev === 0n) || overlay.whiteout) {
      // An overlay whiteout: the OCI form is an empty file, mode 0, never the device.
      out.put(encodeHeader({ ...common, name: `${parent}.wh.${base}`, type: 'file', mode: 0, size: 0 }));
      entries++;
      await out.flushIfFull();
      continue;
    }
    if (base.startsWith('.wh.'))
      throw unrepresentable(
        `the layer contains /${rel}: names starting with ".wh." are OCI whiteout markers and cannot be stored in an image layer; rename it in the build step`,
      );
    if (fmt === S_IFSOCK) continue; // sockets do not survive in any archive format

    const kept = keptXattrs(rel, attrs);
    if (fmt === S_IFDIR) {
      out.put(encodeHeader({ ...common, name: `${rel}/`, type: 'dir', size: 0, xattrs: kept }));
      entries++;
      if (overlay.opaque) {
        out.put(encodeHeader({ ...common, name: `${rel}/${OPAQUE_MARKER}`, type: 'file', mode: 0, size: 0 }));
        entries++;
      }
      await out.flushIfFull();
      continue;
    }

    if (st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = links.get(key);
      if (first !== undefined) {
        out.put(encodeHeader({ ...common, name: rel, type: 'hardlink', size: 0, linkname: first }));
        entries++;
        await out.flushIfFull();
        continue;
      }
      links.set(key, rel);
    }

    switch (fmt) {
      case S_IFREG: {
        const size = Number(st.size);
        out.put(encodeHeader({ ...common, name: rel, type: 'file', size, xattrs: kept }));
        await out.copyFile(abs, size, rel);
        out.zeros(padding(size));
        break;
      }
      case S_IFLNK: {
        const target = readlinkSync(abs, { encoding: 'buffer' });
        let linkname: string;
        try {
          linkname = strictUtf8.decode(target);
        } catch {
          throw unrepresentable(`the symbolic link /${rel} points at a name that is not valid UTF-8; image layers need UTF-8 names`);
        }
        out.put(encodeHeader({ ...common, name: rel, type: 'symlink', size: 0, linkname, xattrs: kept }));
        break;
      }
      case S_IFCHR:
      case S_IFBLK: {
        const { major, minor } = splitDev(st.rdev);
        const h: EntryHeader = {
          ...common,
          name: rel,
          type: fmt === S_IFCHR ? 'chardev' : 'blockdev',
          size: 0,
          devmajor: major,
          devminor: minor,
          xattrs: kept,
        };
        try {
          out.put(encodeHeader(h));
        } catch {
          throw unrepresentable(`the device /${rel} has a device number (${major}:${minor}) too large for a tar header`);
        }
        break;
      }
      case S_IFIFO:
        out.put(encodeHeader({ ...common, name: rel, type: 'fifo', size: 0, xattrs: kept }));
        break;
      default:
        throw unrepresentable(`/${rel} has a file type (mode ${st.mode.toString(8)}) that an image layer cannot hold`);
    }
    entries++;
    await out.flushIfFull();
  }
  return entries;
}

/** Floor of nanoseconds to seconds (BigInt division truncates toward zero). */
function seconds(ns: bigint): number {
  let s = ns / 1_000_000_000n;
  if (ns < 0n && s * 1_000_000_000n !== ns) s -= 1n;
  return Number(s);
}

/** glibc's major()/minor() for a 64-bit dev_t. */
function splitDev(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

/**
 * What overlayfs' own attributes say about a node. Metacopy files (data in a
 * lower layer) and redirected directories cannot be expressed in a layer tar;
 * the builder mounts with metacopy=off,redirect_dir=off so they never appear.
 */
function overlayState(rel: string, fmt: bigint, attrs: Map<string, Buffer> | undefined): { opaque: boolean; whiteout: boolean } {
  const st = { opaque: false, whiteout: false };
  if (!attrs) return st;
  for (const [k, v] of attrs) {
    const sub = k.startsWith('trusted.overlay.') ? k.slice(16) : k.startsWith('user.overlay.') ? k.slice(13) : undefined;
    if (sub === undefined) continue;
    if (sub === 'opaque') st.opaque = fmt === S_IFDIR && v.length === 1 && v[0] === 0x79; // 'y' ('x' only marks xwhiteouts)
    else if (sub === 'whiteout' && fmt === S_IFREG) st.whiteout = true;
    else if (sub === 'metacopy' || sub === 'redirect')
      throw unrepresentable(
        `/${rel} carries the overlayfs ${k} attribute (its content lives in a lower layer); mount the build overlay with metacopy=off,redirect_dir=off`,
      );
  }
  return st;
}

/**
 * Extended attributes recorded in the layer: file capabilities and user.*,
 * the ones Hangar's rootfs applier restores. overlayfs' own attributes are
 * never recorded; security.selinux, trusted.* and ACLs are host state, not
 * image content.
 */
function keptXattrs(rel: string, attrs: Map<string, Buffer> | undefined): Map<string, Buffer> | undefined {
  if (!attrs) return undefined;
  let kept: Map<string, Buffer> | undefined;
  for (const [k, v] of attrs) {
    if (k !== 'security.capability' && !(k.startsWith('user.') && !k.startsWith('user.overlay.'))) continue;
    // A PAX record's key ends at the first '=': such a name would be read back wrong.
    if (k.includes('='))
      throw unrepresentable(`/${rel} has an extended attribute named ${JSON.stringify(k)}; names containing "=" cannot be stored in a tar layer`);
    (kept ??= new Map()).set(k, v);
  }
  return kept;
}

/**
 * Buffers tar output into CHUNK-sized pieces (only the last one shorter, so
 * chunk boundaries, and with them the compressed bytes, depend on the tar
 * alone), hashes them and hands them to the compressor.
 */
class TarOut {
  readonly hash = createHash('sha256');
  private buf = Buffer.allocUnsafe(CHUNK);
  private pos = 0;
  private readonly full: Buffer[] = [];

  constructor(private readonly gz: ParallelGzip) {}

  put(b: Buffer): void {
    let off = 0;
    while (off < b.length) {
      const n = Math.min(b.length - off, CHUNK - this.pos);
      b.copy(this.buf, this.pos, off, off + n);
      this.pos += n;
      off += n;
      if (this.pos === CHUNK) this.rotate();
    }
  }

  zeros(n: number): void {
    while (n > 0) {
      const k = Math.min(n, CHUNK - this.pos);
      this.buf.fill(0, this.pos, this.pos + k);
      this.pos += k;
      n -= k;
      if (this.pos === CHUNK) this.rotate();
    }
  }

  /** Stream `size` bytes of a file straight into the chunk buffer. */
  async copyFile(abs: string, size: number, rel: string): Promise<void> {
    if (size === 0) return;
    // O_NONBLOCK: if the file was swapped for a FIFO after lstat, fail instead of hanging.
    const fd = openSync(abs, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    try {
      let left = size;
      while (left > 0) {
        const want = Math.min(left, CHUNK - this.pos);
        const n = readSync(fd, this.buf, this.pos, want, null);
        if (n === 0) throw new Error(`/${rel} shrank while the layer was being written (the build step must finish before its layer is saved)`);
        this.pos += n;
        left -= n;
        if (this.pos === CHUNK) {
          this.rotate();
          await this.flush();
        }
      }
    } finally {
      closeSync(fd);
    }
  }

  async flushIfFull(): Promise<void> {
    if (this.full.length) await this.flush();
  }

  /** Hand every complete chunk, and the partial one, to zlib. */
  async flush(): Promise<void> {
    if (this.pos > 0) this.rotate();
    while (this.full.length) {
      const chunk = this.full.shift()!;
      this.hash.update(chunk);
      await this.gz.push(chunk);
    }
  }

  private rotate(): void {
    this.full.push(this.pos === CHUNK ? this.buf : this.buf.subarray(0, this.pos));
    this.buf = Buffer.allocUnsafe(CHUNK);
    this.pos = 0;
  }
}

/**
 * gzip with the deflate work spread over the libuv thread pool, as pigz does:
 * each chunk is raw-deflated on its own, primed with the previous chunk's
 * last 32 KiB as dictionary (so matches still reach back across the seam)
 * and ended with a sync flush (byte-aligned, not final); an empty final block
 * and the gzip trailer close the stream. One ordinary gzip member comes out,
 * identical for identical input whatever the scheduling.
 */
class ParallelGzip {
  private crc = 0;
  private isize = 0;
  private tail: Buffer | undefined;
  private readonly inflight: Promise<Buffer>[] = [];

  constructor(
    private readonly level: number,
    private readonly sink: (b: Buffer) => void,
    private readonly signal: AbortSignal | undefined,
  ) {
    // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL OS=unix: no name or time, so the bytes depend on content only.
    const xfl = level === 1 ? 4 : level === 9 ? 2 : 0;
    sink(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]));
  }

  async push(chunk: Buffer): Promise<void> {
    this.signal?.throwIfAborted();
    this.crc = crc32(chunk, this.crc);
    this.isize = (this.isize + chunk.length) % 0x100000000;
    const job = deflateChunk(chunk, this.level, this.tail);
    job.catch(() => {}); // awaited in order below; an abort may leave some unobserved
    this.inflight.push(job);
    this.tail = chunk.subarray(Math.max(0, chunk.length - 32768));
    while (this.inflight.length >= PARALLEL) {
      this.sink(await this.inflight.shift()!);
      this.signal?.throwIfAborted();
    }
  }

  async end(): Promise<void> {
    while (this.inflight.length) this.sink(await this.inflight.shift()!);
    const trailer = Buffer.alloc(10);
    trailer[0] = 0x03; // final fixed-Huffman block holding only end-of-block
    trailer.writeUInt32LE(this.crc >>> 0, 2);
    trailer.writeUInt32LE(this.isize, 6);
    this.sink(trailer);
  }
}

/** Compression jobs in flight: enough to keep the cores busy, bounded by libuv's default pool of 4. */
const PARALLEL = Math.max(2, Math.min(availableParallelism(), 4));

function deflateChunk(chunk: Buffer, level: number, dictionary: Buffer | undefined): Promise<Buffer> {
  return new Promise((resolvePromise, reject) =>
    deflateRaw(chunk, { level, dictionary, finishFlush: zlibConstants.Z_SYNC_FLUSH }, (err, out) =>
      err ? reject(err) : resolvePromise(out),
    ),
  );
}

/** zlib.crc32 arrived in Node 20.15; a table-driven fallback for older 20.x. */
const crc32: (data: Buffer, value: number) => number =
  ((zlib as { crc32?: unknown }).crc32 as ((data: Buffer, value: number) => number) | undefined) ?? crc32Js;

let crcTable: Int32Array | undefined;
function crc32Js(data: Buffer, value: number): number {
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  let c = ~value;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

interface XattrRead {
  done: Promise<Map<string, Map<string, Buffer>>>;
  cancel(): void;
}

/**
 * All extended attributes under root, keyed by archive path, from one
 * `getfattr` run. Its dump format: "# file: PATH" then "name=0xHEX" lines,
 * a blank line between files; in names it escapes '\\', '\n', '\r' (and '='
 * in attribute names) as \ooo octal, other bytes are raw.
 */
function readXattrs(root: string, signal: AbortSignal | undefined): XattrRead {
  let child: ChildProcess | undefined;
  const done = new Promise<Map<string, Map<string, Buffer>>>((resolvePromise, reject) => {
    child = spawn('getfattr', ['-R', '-h', '--absolute-names', '-d', '-m', '.', '-e', 'hex', '--', root], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
      signal,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.name === 'AbortError') return reject(signal?.reason ?? e);
      reject(
        e.code === 'ENOENT'
          ? new HangarError('MISSING_TOOL', 'getfattr is not installed (Debian package "attr"); run scripts/setup.sh', { status: 500 })
          : new Error(`could not run getfattr: ${e.message}`),
      );
    });
    child.on('close', (code, sig) => {
      if (code !== 0) {
        if (signal?.aborted) return reject(signal.reason);
        return reject(
          new Error(
            `getfattr -R ${root} failed (${sig ?? `exit ${code}`}): ${Buffer.concat(err).toString('utf8').trim().slice(-1000)}`,
          ),
        );
      }
      try {
        resolvePromise(parseGetfattr(Buffer.concat(out), root));
      } catch (e) {
        reject(e);
      }
    });
  });
  done.catch(() => {}); // observed by the caller's await; avoid an unhandled rejection if the walk fails first
  return { done, cancel: () => child?.kill('SIGKILL') };
}

/** Parse `getfattr -d -e hex` output into archive path → attribute name → value. */
function parseGetfattr(text: Buffer, root: string): Map<string, Map<string, Buffer>> {
  const result = new Map<string, Map<string, Buffer>>();
  const rootBytes = Buffer.from(root, 'utf8');
  let current: Map<string, Buffer> | undefined;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf(0x0a, start);
    if (end === -1) end = text.length;
    const line = text.subarray(start, end);
    start = end + 1;
    if (line.length === 0) {
      current = undefined;
      continue;
    }
    if (line.subarray(0, 8).toString('latin1') === '# file: ') {
      const path = unescapeOctal(line.subarray(8));
      current = new Map();
      if (path.equals(rootBytes)) continue; // the layer root itself is not an entry
      if (path.length <= rootBytes.length + 1 || !path.subarray(0, rootBytes.length).equals(rootBytes) || path[rootBytes.length] !== 0x2f)
        throw new Error(`getfattr reported a path outside ${root}: ${JSON.stringify(path.toString('utf8'))}`);
      result.set(path.subarray(rootBytes.length + 1).toString('utf8'), current);
      continue;
    }
    if (!current) throw new Error(`unexpected getfattr output line ${JSON.stringify(line.toString('utf8'))}`);
    const eq = line.indexOf(0x3d);
    const name = unescapeOctal(eq === -1 ? line : line.subarray(0, eq)).toString('utf8');
    const raw = eq === -1 ? '' : line.subarray(eq + 1).toString('latin1');
    let value: Buffer;
    if (raw === '' || raw === '""') value = Buffer.alloc(0);
    else if (/^0x([0-9a-fA-F]{2})*$/.test(raw)) value = Buffer.from(raw.slice(2), 'hex');
    else throw new Error(`unexpected getfattr value for ${name}: ${JSON.stringify(raw.slice(0, 80))}`);
    current.set(name, value);
  }
  return result;
}

/** Undo getfattr's \ooo escaping (a backslash is itself always escaped, so every "\" starts one). */
function unescapeOctal(b: Buffer): Buffer {
  if (b.indexOf(0x5c) === -1) return b;
  const out = Buffer.alloc(b.length);
  let o = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === 0x5c && i + 3 < b.length && isOct(b[i + 1]) && isOct(b[i + 2]) && isOct(b[i + 3])) {
      out[o++] = ((b[i + 1]! - 0x30) << 6) | ((b[i + 2]! - 0x30) << 3) | (b[i + 3]! - 0x30);
      i += 3;
    } else out[o++] = c;
  }
  return out.subarray(0, o);
}

function isOct(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x37;
}
