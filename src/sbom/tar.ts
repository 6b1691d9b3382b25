import { HangarError } from '../shared/errors.js';
import { ByteReader } from './bytes.js';

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

export interface TarEntry {
  /** Normalised relative path: no leading `/` or `./`, no `..`. */
  path: string;
  type: TarEntryType;
  /** Symlink target as written, or the normalised hard-link target path. */
  linkpath: string;
  size: number;
}

export interface TarVisitor {
  /** Return true to receive the body of this entry (regular files only). */
  want(entry: TarEntry): boolean;
  body(entry: TarEntry, data: Buffer): void;
}

const BLOCK = 512;
/** GNU long names and PAX headers are metadata; anything this large is an attack or corruption. */
const MAX_META = 1 << 20;

/**
 * Minimal streaming tar reader: ustar, GNU long names/links (L/K) and PAX
 * extended headers (path, linkpath, size). Only bodies the visitor asks for
 * are buffered; the rest is skipped as it streams past.
 */
export async function readTar(source: AsyncIterable<Uint8Array>, visitor: TarVisitor, maxBody: number): Promise<void> {
  const r = new ByteReader(source);
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Record<string, string> = {};
  let global: Record<string, string> = {};
  try {
    for (;;) {
      const at = r.offset;
      const header = await r.read(BLOCK);
      if (!header) return;
      if (isZero(header)) return;
      verifyChecksum(header, at);
      const flag = String.fromCharCode(header[156]!);
      let size = parseNumber(header.subarray(124, 136), at);
      if (pax.size !== undefined) size = Number(pax.size);
      else if (global.size !== undefined) size = Number(global.size);
      if (!Number.isSafeInteger(size) || size < 0) throw bad(at, 'invalid entry size');
      const padded = Math.ceil(size / BLOCK) * BLOCK;

      if (flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g') {
        if (size > MAX_META) throw bad(at, `metadata entry of ${size} bytes`);
        const data = (await r.read(padded))!.subarray(0, size);
        if (flag === 'L') longName = cString(data);
        else if (flag === 'K') longLink = cString(data);
        else if (flag === 'x') pax = { ...pax, ...parsePax(data, at) };
        else global = { ...global, ...parsePax(data, at) };
        continue;
      }

      const magic = header.subarray(257, 263).toString('latin1');
      let name = cString(header.subarray(0, 100));
      // The prefix field only exists in POSIX ustar; GNU tar stores times there.
      if (magic === 'ustar\0') {
        const prefix = cString(header.subarray(345, 500));
        if (prefix) name = `${prefix}/${name}`;
      }
      if (longName !== undefined) name = longName;
      if (pax.path !== undefined) name = pax.path;
      let link = cString(header.subarray(157, 257));
      if (longLink !== undefined) link = longLink;
      if (pax.linkpath !== undefined) link = pax.linkpath;
      longName = longLink = undefined;
      pax = {};

      const type: TarEntryType =
        flag === '0' || flag === '\0' || flag === '7'
          ? 'file'
          : flag === '5'
            ? 'dir'
            : flag === '2'
              ? 'symlink'
              : flag === '1'
                ? 'hardlink'
                : 'other';
      const path = normalise(name);
      const entry: TarEntry = {
        path: path ?? '',
        type,
        linkpath: type === 'hardlink' ? (normalise(link) ?? '') : link,
        size: type === 'file' ? size : 0,
      };
      // Entries escaping the root are never legitimate in a layer: ignore them.
      if (path !== undefined && path !== '' && type === 'file' && visitor.want(entry)) {
        if (size > maxBody) {
          throw new HangarError('TOO_LARGE', `file /${path} in the image is ${size} bytes, above the ${maxBody}-byte limit for package databases; the image cannot be scanned`);
        }
        const data = (await r.read(padded)) ?? Buffer.alloc(0);
        visitor.body(entry, data.subarray(0, size));
      } else {
        if (path !== undefined && path !== '' && type !== 'file') visitor.want(entry);
        await r.skip(padded);
      }
    }
  } finally {
    await r.close();
  }
}

/** Normalise a member name; undefined when it climbs above the root. */
export function normalise(name: string): string | undefined {
  const stack: string[] = [];
  for (const seg of name.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (!stack.length) return undefined;
      stack.pop();
    } else stack.push(seg);
  }
  return stack.join('/');
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

function cString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
}

function parseNumber(field: Buffer, at: number): number {
  // GNU base-256 for values that do not fit in octal.
  if (field[0]! & 0x80) {
    let v = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) v = v * 256 + field[i]!;
    return v;
  }
  const s = cString(field).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw bad(at, `invalid octal number "${s}"`);
  return parseInt(s, 8);
}

function verifyChecksum(h: Buffer, at: number): void {
  const stored = cString(h.subarray(148, 156)).trim();
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  if (!/^[0-7]+$/.test(stored) || parseInt(stored, 8) !== sum) {
    throw bad(at, 'header checksum mismatch (not a tar archive, or corrupt)');
  }
}

function parsePax(data: Buffer, at: number): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    if (sp < 0) break;
    const len = Number(data.subarray(pos, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= 0 || pos + len > data.length) throw bad(at, 'malformed PAX header');
    const rec = data.subarray(sp + 1, pos + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    pos += len;
  }
  return out;
}

function bad(at: number, what: string): HangarError {
  return new HangarError('SBOM_BAD_LAYER', `layer is not a readable tar archive at byte ${at}: ${what}; the blob is corrupt or not a filesystem layer`);
}
