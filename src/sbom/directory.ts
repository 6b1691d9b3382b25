import { lstat, opendir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { HangarError } from '../shared/errors.js';
import { isInteresting, isMarker, MAX_FILE_BYTES, MAX_SYMLINKS, MAX_TOTAL_BYTES, type FileView } from './files.js';

/** Gather package-data files from a flattened root filesystem (never following symlinked directories). */
export async function viewFromDirectory(root: string): Promise<FileView> {
  const st = await lstat(root).catch(() => undefined);
  if (!st?.isDirectory()) {
    throw new HangarError('NOT_FOUND', `${root} is not a directory; pass the root of an unpacked image filesystem`);
  }
  const view: FileView = { files: new Map(), symlinks: new Map(), markers: new Set() };
  let total = 0;
  const walk = async (dir: string, rel: string): Promise<void> => {
    const handle = await opendir(dir);
    const entries: Array<{ name: string; kind: 'dir' | 'file' | 'link' }> = [];
    for await (const d of handle) {
      if (d.isDirectory()) entries.push({ name: d.name, kind: 'dir' });
      else if (d.isSymbolicLink()) entries.push({ name: d.name, kind: 'link' });
      else if (d.isFile()) entries.push({ name: d.name, kind: 'file' });
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const abs = join(dir, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.kind === 'dir') await walk(abs, r);
      else if (e.kind === 'link') {
        if (view.symlinks.size >= MAX_SYMLINKS) throw new HangarError('TOO_LARGE', `${root} has more than ${MAX_SYMLINKS} symlinks; it cannot be scanned`);
        view.symlinks.set(r, await readlink(abs));
      }
      else if (isMarker(r)) view.markers.add(r);
      else if (isInteresting(r)) {
        const size = (await lstat(abs)).size;
        if (size > MAX_FILE_BYTES) {
          throw new HangarError('TOO_LARGE', `/${r} is ${size} bytes, above the ${MAX_FILE_BYTES}-byte limit for package databases`);
        }
        total += size;
        if (total > MAX_TOTAL_BYTES) throw new HangarError('TOO_LARGE', `package data under ${root} exceeds ${MAX_TOTAL_BYTES} bytes`);
        view.files.set(r, await readFile(abs));
      }
    }
  };
  await walk(root, '');
  return view;
}
