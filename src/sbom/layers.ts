import { createReadStream } from 'node:fs';
import { HangarError } from '../shared/errors.js';
import { decompressStream } from './decompress.js';
import { readTar } from './tar.js';
import { isInteresting, isMarker, MAX_FILE_BYTES, MAX_SYMLINKS, MAX_TOTAL_BYTES, type FileView } from './files.js';

/** A layer: a blob file path, or a function opening its (possibly compressed) tar stream. */
export type LayerSource = string | (() => AsyncIterable<Uint8Array>);

type Node = { kind: 'file'; data: Buffer } | { kind: 'symlink'; target: string } | { kind: 'marker' };

/**
 * Apply layers in order, keeping only package-data files and symlinks.
 * OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) and same-path replacement
 * remove what lower layers put there, so a dpkg status deleted or replaced
 * by a later layer is seen exactly as the running container would see it.
 */
export async function viewFromLayers(layers: readonly LayerSource[]): Promise<FileView> {
  const state = new Map<string, Node>();
  let total = 0;
  let links = 0;
  for (const [index, layer] of layers.entries()) {
    const added = new Map<string, Node>();
    const removals: string[] = []; // remove path and everything below it
    const opaque: string[] = []; // remove everything below the directory
    const dirs: string[] = []; // a directory replaces a lower file at that path only
    const hardlinks: Array<[string, string]> = [];
    const lower = lowerIndex(state);
    const open = typeof layer === 'string' ? () => createReadStream(layer) : layer;
    try {
      await readTar(
        decompressStream(open()),
        {
          want(entry) {
            const slash = entry.path.lastIndexOf('/');
            const base = entry.path.slice(slash + 1);
            const dir = slash < 0 ? '' : entry.path.slice(0, slash);
            // Whiteouts only matter when they hide something we track; checking first keeps
            // a layer with thousands of deletions from scanning the state for each one.
            if (base === '.wh..wh..opq') {
              if (dir === '' || lower.hasDir(dir)) opaque.push(dir);
              return false;
            }
            if (base.startsWith('.wh.')) {
              const target = (dir ? dir + '/' : '') + base.slice(4);
              if (lower.has(target) || lower.hasDir(target)) removals.push(target);
              return false;
            }
            if (entry.type === 'dir') {
              if (lower.has(entry.path)) dirs.push(entry.path);
              return false;
            }
            if (lower.has(entry.path) || lower.hasDir(entry.path)) removals.push(entry.path);
            if (entry.type === 'symlink') {
              if (++links > MAX_SYMLINKS) throw new HangarError('TOO_LARGE', `the image has more than ${MAX_SYMLINKS} symlinks; it cannot be scanned`);
              added.set(entry.path, { kind: 'symlink', target: entry.linkpath });
              return false;
            }
            if (entry.type === 'file' && isMarker(entry.path)) added.set(entry.path, { kind: 'marker' });
            if (entry.type === 'hardlink' && isInteresting(entry.path)) hardlinks.push([entry.path, entry.linkpath]);
            return entry.type === 'file' && isInteresting(entry.path);
          },
          body(entry, data) {
            total += data.length;
            if (total > MAX_TOTAL_BYTES) {
              throw new HangarError('TOO_LARGE', `package data in this image exceeds ${MAX_TOTAL_BYTES} bytes; the image cannot be scanned`);
            }
            added.set(entry.path, { kind: 'file', data });
          },
        },
        MAX_FILE_BYTES,
      );
    } catch (e) {
      if (e instanceof HangarError) {
        throw new HangarError(e.code, `layer ${index + 1} of ${layers.length}: ${e.message}`, { status: e.status, cause: e });
      }
      throw new HangarError('SBOM_BAD_LAYER', `layer ${index + 1} of ${layers.length} could not be read: ${(e as Error).message}`, { cause: e });
    }
    for (const [from, to] of hardlinks) {
      const target = added.get(to) ?? state.get(to);
      if (target?.kind === 'file') added.set(from, target);
    }
    for (const p of removals) removeTree(state, p, true);
    for (const d of opaque) removeTree(state, d, false);
    for (const d of dirs) if (state.get(d)) state.delete(d);
    for (const [p, n] of added) state.set(p, n);
  }
  const view: FileView = { files: new Map(), symlinks: new Map(), markers: new Set() };
  for (const [p, n] of [...state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (n.kind === 'file') view.files.set(p, n.data);
    else if (n.kind === 'symlink') view.symlinks.set(p, n.target);
    else view.markers.add(p);
  }
  return view;
}

/** Lookup of tracked paths and their ancestor directories, so each tar entry costs O(1). */
function lowerIndex(state: Map<string, Node>) {
  const dirs = new Set<string>();
  for (const p of state.keys()) {
    let i = p.lastIndexOf('/');
    while (i > 0) {
      const d = p.slice(0, i);
      if (dirs.has(d)) break;
      dirs.add(d);
      i = d.lastIndexOf('/');
    }
  }
  return { has: (p: string) => state.has(p), hasDir: (p: string) => dirs.has(p) };
}

function removeTree(state: Map<string, Node>, path: string, includeSelf: boolean): void {
  const prefix = path === '' ? '' : path + '/';
  for (const k of [...state.keys()]) {
    if ((includeSelf && k === path) || k.startsWith(prefix)) state.delete(k);
  }
}
