/**
 * Encodes one tar entry header: a POSIX ustar block, preceded by a PAX
 * extended header ('x') when a value does not fit ustar (long or non-ASCII
 * names, sizes ≥ 8 GiB, big ids, times before 1970) or when the entry
 * carries extended attributes (SCHILY.xattr.*, as GNU tar and Go write them).
 *
 * Output depends only on the arguments, so equal trees give equal bytes
 * (no user/group names, no atime/ctime, a fixed name for the PAX header).
 */

export const BLOCK = 512;

export type TarType = 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'dir' | 'fifo';

const TYPEFLAG: Record<TarType, number> = {
  file: 0x30,
  hardlink: 0x31,
  symlink: 0x32,
  chardev: 0x33,
  blockdev: 0x34,
  dir: 0x35,
  fifo: 0x36,
};

export interface EntryHeader {
  /** Archive path, relative, no leading "./"; directories end with "/". */
  name: string;
  type: TarType;
  /** Permission bits including setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  /** Body size (files only; 0 for everything else). */
  size: number;
  /** Whole seconds since the epoch. */
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes to record, already filtered; written in name order. */
  xattrs?: ReadonlyMap<string, Buffer>;
}

/** Largest values the ustar octal fields hold (width - 1 digits). */
const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;

/** Round a body size up to whole blocks: the padding that follows the body. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** The header block(s) for one entry: [PAX header + PAX data +] ustar block. */
export function encodeHeader(h: EntryHeader): Buffer {
  const pax: [string, Buffer][] = [];
  const name = Buffer.from(h.name, 'utf8');
  const link = Buffer.from(h.linkname ?? '', 'utf8');

  let nameField: Buffer = name;
  let prefixField: Buffer | undefined;
  if (!isAscii(name) || name.length > 100) {
    const split = isAscii(name) ? splitUstarName(name) : undefined;
    if (split) [prefixField, nameField] = split;
    else {
      pax.push(['path', name]);
      nameField = truncateUtf8(name, 100);
    }
  }
  let linkField: Buffer = link;
  if (!isAscii(link) || link.length > 100) {
    pax.push(['linkpath', link]);
    linkField = truncateUtf8(link, 100);
  }
  const size = h.type === 'file' ? h.size : 0;
  if (size > MAX_OCTAL_11) pax.push(['size', Buffer.from(String(size))]);
  if (h.uid > MAX_OCTAL_7) pax.push(['uid', Buffer.from(String(h.uid))]);
  if (h.gid > MAX_OCTAL_7) pax.push(['gid', Buffer.from(String(h.gid))]);
  if (h.mtime < 0 || h.mtime > MAX_OCTAL_11) pax.push(['mtime', Buffer.from(String(h.mtime))]);
  const major = h.devmajor ?? 0;
  const minor = h.devminor ?? 0;
  // PAX has no standard key for device numbers: refuse rather than truncate.
  if (major > MAX_OCTAL_7 || minor > MAX_OCTAL_7)
    throw new RangeError(`device number ${major}:${minor} of ${h.name} does not fit a tar header`);
  if (h.xattrs) {
    for (const k of [...h.xattrs.keys()].sort()) pax.push([`SCHILY.xattr.${k}`, h.xattrs.get(k)!]);
  }

  const block = Buffer.alloc(BLOCK);
  nameField.copy(block, 0);
  octal(block, 100, 8, h.mode & 0o7777);
  octal(block, 108, 8, h.uid <= MAX_OCTAL_7 ? h.uid : 0);
  octal(block, 116, 8, h.gid <= MAX_OCTAL_7 ? h.gid : 0);
  octal(block, 124, 12, size > MAX_OCTAL_11 ? 0 : size);
  octal(block, 136, 12, h.mtime < 0 || h.mtime > MAX_OCTAL_11 ? 0 : h.mtime);
  block[156] = TYPEFLAG[h.type];
  linkField.copy(block, 157);
  block.write('ustar\x0000', 257, 'latin1');
  // uname / gname (265, 297) stay empty: numeric ids only.
  octal(block, 329, 8, major);
  octal(block, 337, 8, minor);
  if (prefixField) prefixField.copy(block, 345);
  checksum(block);

  if (pax.length === 0) return block;
  const data = paxRecords(pax);
  const ph = Buffer.alloc(BLOCK);
  ph.write('PaxHeader', 0, 'latin1');
  octal(ph, 100, 8, 0o644);
  octal(ph, 108, 8, 0);
  octal(ph, 116, 8, 0);
  octal(ph, 124, 12, data.length);
  octal(ph, 136, 12, 0);
  ph[156] = 0x78; // 'x'
  ph.write('ustar\x0000', 257, 'latin1');
  checksum(ph);
  return Buffer.concat([ph, data, Buffer.alloc(padding(data.length)), block]);
}

/** The end-of-archive marker: two zero blocks. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}

/** "<len> <key>=<value>\n" records, len counting the whole record including itself. */
function paxRecords(records: [string, Buffer][]): Buffer {
  const out: Buffer[] = [];
  for (const [key, value] of records) {
    const body = Buffer.byteLength(key) + value.length + 3; // ' ', '=', '\n'
    let len = body + String(body).length;
    if (String(len).length !== String(len - body).length) len = body + String(len).length;
    out.push(Buffer.from(`${len} ${key}=`, 'utf8'), value, Buffer.from('\n'));
  }
  return Buffer.concat(out);
}

/**
 * Split a long ASCII name into ustar prefix (≤155) and name (≤100, non-empty)
 * at a '/', or undefined when no split fits.
 */
function splitUstarName(name: Buffer): [Buffer, Buffer] | undefined {
  if (name.length > 256) return undefined;
  for (let i = Math.min(155, name.length - 2); i > 0; i--) {
    if (name[i] !== 0x2f) continue;
    const rest = name.length - i - 1;
    if (rest > 100) return undefined; // shorter prefixes only make the name longer
    return [name.subarray(0, i), name.subarray(i + 1)];
  }
  return undefined;
}

/**
 * The ustar field under a PAX path is only a fallback for old readers, but
 * strict ones (Hangar's own) decode it as UTF-8 before applying PAX: never
 * cut a character in half.
 */
function truncateUtf8(b: Buffer, max: number): Buffer {
  if (b.length <= max) return b;
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

function isAscii(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i]! > 0x7e || b[i]! < 0x20) return false;
  return true;
}

function octal(block: Buffer, off: number, width: number, value: number): void {
  block.write(value.toString(8).padStart(width - 1, '0'), off, width - 1, 'latin1');
  block[off + width - 1] = 0;
}

function checksum(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i]!;
  block.write(sum.toString(8).padStart(6, '0'), 148, 6, 'latin1');
  block[154] = 0;
  block[155] = 0x20;
}
