import { HangarError } from '../shared/errors.js';
import { TarFormatError, TarParser, type TarHeader } from '../rootfs/tar.js';

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

/**
 * Entry-level view over the rootfs tar parser (one tar reader in Hangar):
 * the visitor sees every entry whose path stays inside the root, and only
 * the bodies it asks for are kept in memory; the rest streams past.
 */
export async function readTar(source: AsyncIterable<Uint8Array>, visitor: TarVisitor, maxBody: number): Promise<void> {
  let current: { entry: TarEntry; chunks: Buffer[] } | undefined;
  const parser = new TarParser({
    entry(h: TarHeader) {
      current = undefined;
      const path = normalise(h.name);
      // Entries escaping the root are never legitimate in a layer: ignore them.
      if (path === undefined || path === '') return;
      const type = entryType(h);
      const entry: TarEntry = { path, type, linkpath: type === 'hardlink' ? (normalise(h.linkname) ?? '') : h.linkname, size: type === 'file' ? h.size : 0 };
      if (!visitor.want(entry) || type !== 'file') return;
      if (h.size > maxBody) {
        throw new HangarError('TOO_LARGE', `file /${path} in the image is ${h.size} bytes, above the ${maxBody}-byte limit for package databases; the image cannot be scanned`);
      }
      current = { entry, chunks: [] };
    },
    data(chunk) {
      current?.chunks.push(Buffer.from(chunk));
    },
    endEntry() {
      if (current) visitor.body(current.entry, Buffer.concat(current.chunks));
      current = undefined;
    },
  });
  let offset = 0;
  try {
    for await (const chunk of source) {
      if (parser.ended) break;
      parser.write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      offset += chunk.byteLength;
    }
    parser.end();
  } catch (e) {
    if (e instanceof TarFormatError) {
      throw new HangarError('SBOM_BAD_LAYER', `layer is not a readable tar archive (near byte ${offset}): ${e.message}; the blob is corrupt or not a filesystem layer`);
    }
    throw e;
  }
}

function entryType(h: TarHeader): TarEntryType {
  switch (h.type) {
    case 'file': case 'dir': case 'symlink': case 'hardlink': return h.type;
    default: return 'other';
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
