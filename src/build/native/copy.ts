import { createHash, type Hash } from 'node:crypto';
import { chmodSync, chownSync, closeSync, constants, copyFileSync, lchownSync, lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, readlinkSync, readSync, rmSync, statSync, symlinkSync, utimesSync, type Stats } from 'node:fs';
import { basename, join, posix, relative } from 'node:path';
import { HangarError } from '../../shared/errors.js';
import { pathInRoot } from './paths.js';
import type { Ids } from './users.js';

/**
 * COPY and ADD: files from the build context or another stage are written
 * into a fresh layer directory, never into a mounted image, so nothing the
 * image contains (symlinks included) can redirect a write to the host.
 * Semantics follow BuildKit: a directory source copies its contents, a
 * destination ending in `/` (or an existing directory) receives sources by
 * name, missing parents are created.
 */
export interface CopySource {
  /** Tree the patterns are resolved in (context directory or a stage's view). */
  root: string;
  patterns: string[];
  /** Keep owners from the source (another stage) rather than 0:0 (the context). */
  keepOwners: boolean;
}

export interface CopyRequest {
  what: string;
  source: CopySource;
  /** Absolute image path; a trailing slash means a directory. */
  dest: string;
  /** The destination stage's merged view, for existing directories and symlinks; undefined for an empty stage. */
  destRoot: string | undefined;
  layer: string;
  chown?: Ids;
  chmod?: number;
  /** Called for each copied top-level source, to refuse what the native builder does not do (ADD archives). */
  check?: (hostPath: string, st: Stats) => void;
  note: (line: string) => void;
}

const GLOB = /[*?[\\]/;

function globRegex(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new Error(`unterminated [ in pattern ${pattern}`);
      let body = pattern.slice(i + 1, end);
      if (body.startsWith('^') || body.startsWith('!')) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** The image-relative paths `pattern` names in `root` (Go filepath.Match per component, as Docker). */
export function expandPattern(root: string, pattern: string, what: string): string[] {
  const norm = posix.normalize(`/${pattern}`);
  if (posix.normalize(pattern).startsWith('../')) {
    throw new HangarError('BUILD_FAILED', `${what}: source ${pattern} is outside the build context; sources are relative to the context directory`, { status: 422 });
  }
  const parts = norm.split('/').filter(Boolean);
  if (!parts.some((p) => GLOB.test(p))) {
    const host = pathInRoot(root, norm);
    try {
      statSync(host);
    } catch {
      throw new HangarError('BUILD_FAILED', `${what}: ${pattern} not found in the build context (or excluded by .dockerignore)`, { status: 422 });
    }
    return [norm];
  }
  let found = ['/'];
  for (const part of parts) {
    const next: string[] = [];
    for (const dir of found) {
      if (!GLOB.test(part)) {
        next.push(posix.join(dir, part));
        continue;
      }
      let re: RegExp;
      try {
        re = globRegex(part);
      } catch (e) {
        throw new HangarError('BUILD_FAILED', `${what}: bad pattern: ${(e as Error).message}`, { status: 422 });
      }
      let names: string[] = [];
      try {
        names = readdirSync(pathInRoot(root, dir));
      } catch {
        continue;
      }
      for (const n of names.sort()) if (re.test(n)) next.push(posix.join(dir, n));
    }
    found = next;
  }
  found = found.filter((p) => {
    try {
      statSync(pathInRoot(root, p));
      return true;
    } catch {
      return false;
    }
  });
  if (!found.length) throw new HangarError('BUILD_FAILED', `${what}: no files match ${pattern} in the build context (or they are excluded by .dockerignore)`, { status: 422 });
  return found;
}

/** Feed a file to `h` a chunk at a time (a context may hold files bigger than memory). */
function hashFile(h: Hash, path: string): void {
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  h.update('\0');
}

/**
 * What a COPY from the context depends on: names, types, modes and content
 * of everything it would copy (not times: an untouched checkout hits the
 * cache, as with BuildKit).
 */
export function hashSources(root: string, patterns: string[], what: string): string {
  const h = createHash('sha256');
  const walk = (host: string, name: string, st: Stats) => {
    h.update(`${name}\0${st.mode}\0`);
    if (st.isSymbolicLink()) h.update(`l${readlinkSync(host)}\0`);
    else if (st.isFile()) hashFile(h, host);
    else if (st.isDirectory()) for (const n of readdirSync(host).sort()) walk(join(host, n), `${name}/${n}`, lstatSync(join(host, n)));
  };
  for (const p of patterns) {
    h.update(`pattern ${p}\0`);
    for (const m of expandPattern(root, p, what)) {
      const host = pathInRoot(root, m);
      walk(host, m, statSync(host));
    }
  }
  return h.digest('hex');
}

export interface Meta {
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
}

function metaOf(st: Stats, r: CopyRequest): Meta {
  return {
    mode: r.chmod ?? st.mode & 0o7777,
    uid: r.chown?.uid ?? (r.source.keepOwners ? st.uid : 0),
    gid: r.chown?.gid ?? (r.source.keepOwners ? st.gid : 0),
    mtime: st.mtime,
  };
}

/** Directories whose times are set last (writing into them moves them). */
export type DirTimes = Array<[string, Date]>;

function makeDir(path: string, m: Meta, times: DirTimes): void {
  let st: Stats | undefined;
  try {
    st = lstatSync(path);
  } catch {
    // new
  }
  if (st && !st.isDirectory()) rmSync(path, { recursive: true, force: true });
  if (!st?.isDirectory()) mkdirSync(path);
  chownSync(path, m.uid, m.gid);
  chmodSync(path, m.mode);
  times.push([path, m.mtime]);
}

function copyEntry(src: string, st: Stats, dst: string, r: CopyRequest, times: DirTimes): void {
  const m = metaOf(st, r);
  if (st.isDirectory()) {
    makeDir(dst, m, times);
    for (const n of readdirSync(src).sort()) copyEntry(join(src, n), lstatSync(join(src, n)), join(dst, n), r, times);
    return;
  }
  let existing: Stats | undefined;
  try {
    existing = lstatSync(dst);
  } catch {
    // new
  }
  if (existing) rmSync(dst, { recursive: true, force: true });
  if (st.isFile()) {
    copyFileSync(src, dst, constants.COPYFILE_FICLONE);
    chownSync(dst, m.uid, m.gid);
    chmodSync(dst, m.mode);
    utimesSync(dst, st.atime, m.mtime);
  } else if (st.isSymbolicLink()) {
    symlinkSync(readlinkSync(src), dst);
    lchownSync(dst, m.uid, m.gid);
    lutimesSync(dst, st.atime, m.mtime);
  } else {
    r.note(`${r.what}: skipped ${basename(src)}: COPY takes files, directories and symlinks only`);
  }
}

/**
 * Create image directory `rel` and its parents in `layer`, each with the
 * metadata it has in the image (`view`), so the layer changes none of them;
 * a missing one is new: `created`, the last one `leaf` if given. Returns
 * the host path in the layer.
 */
export function makeDirs(layer: string, view: string | undefined, rel: string, created: Meta, times: DirTimes, leaf?: Meta): string {
  let host = layer;
  let img = view;
  const parts = rel.split('/').filter(Boolean);
  for (const [i, part] of parts.entries()) {
    host = join(host, part);
    let st: Stats | undefined;
    if (img !== undefined) {
      img = join(img, part);
      try {
        st = lstatSync(img);
      } catch {
        img = undefined;
      }
    }
    makeDir(host, st?.isDirectory() ? { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime } : i === parts.length - 1 && leaf ? leaf : created, times);
  }
  return host;
}

/** Set the times of directories written into, last (writing moved them). */
export function settleTimes(times: DirTimes): void {
  for (const [p, t] of times.reverse()) utimesSync(p, t, t);
}

/** Parents as COPY makes them: new ones 0755, owned by the --chown user (as BuildKit). */
function ensureParents(r: CopyRequest, rel: string, times: DirTimes, leaf?: Meta): string {
  return makeDirs(r.layer, r.destRoot, rel, { mode: 0o755, uid: r.chown?.uid ?? 0, gid: r.chown?.gid ?? 0, mtime: new Date() }, times, leaf);
}

/** Run one COPY/ADD into `r.layer`. */
export function copyIntoLayer(r: CopyRequest): void {
  const matches = r.source.patterns.flatMap((p) => expandPattern(r.source.root, p, r.what));
  const wantsDir = r.dest.endsWith('/');
  if (r.source.patterns.length > 1 && !wantsDir) {
    throw new HangarError('BUILD_FAILED', `${r.what}: with more than one source the destination must be a directory ending in /, e.g. ${r.dest}/`, { status: 422 });
  }
  // Where the destination really is in the image (its symlinks followed, inside the image).
  const realDest = r.destRoot ? `/${relative(r.destRoot, pathInRoot(r.destRoot, r.dest))}` : posix.normalize(r.dest);
  let destIsDir = wantsDir || matches.length > 1;
  if (!destIsDir && r.destRoot) {
    try {
      destIsDir = lstatSync(join(r.destRoot, realDest)).isDirectory();
    } catch {
      // not there
    }
  }
  const times: DirTimes = [];
  for (const m of matches) {
    const host = pathInRoot(r.source.root, m);
    const st = statSync(host);
    r.check?.(host, st);
    if (st.isDirectory()) {
      // The directory's contents, not the directory: it becomes the destination.
      const dir = ensureParents(r, realDest, times, metaOf(st, r));
      for (const n of readdirSync(host).sort()) copyEntry(join(host, n), lstatSync(join(host, n)), join(dir, n), r, times);
    } else if (destIsDir) {
      copyEntry(host, st, join(ensureParents(r, realDest, times), posix.basename(m)), r, times);
    } else {
      copyEntry(host, st, join(ensureParents(r, posix.dirname(realDest), times), posix.basename(realDest)), r, times);
    }
  }
  settleTimes(times);
}
