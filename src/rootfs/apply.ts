/**
 * Applies layer tar entries to a directory tree with OCI layer semantics,
 * treating every entry as hostile.
 *
 * Containment rule: an entry's parent path is resolved one component at a
 * time with lstat. A symlink met on the way is resolved *inside* the root
 * (absolute targets restart at the root, `..` stops at the root), exactly as
 * the guest will see it after it boots with this tree as `/`; the final
 * component is never followed (it is replaced, linked, or removed itself).
 * Every path handed to a syscall is therefore a chain of real directories
 * under the root, and this process is the only writer of the tree (it lives
 * in a 0700 temp dir), so nothing can swap a component behind our back.
 * There is no directory cache to poison: each entry is resolved afresh.
 *
 * Names that no image builder produces (absolute paths, `..` components,
 * bogus whiteouts) are refused outright with a clear error.
 */
import {
  closeSync,
  fchmodSync,
  fchownSync,
  futimesSync,
  chmodSync,
  constants as C,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, relative } from 'node:path';
import type { TarHeader, TarSink } from './tar.js';

export class UnsafeEntryError extends Error {
  override name = 'UnsafeEntryError';
}
export class LayerLimitError extends Error {
  override name = 'LayerLimitError';
}

export interface TreeLimits {
  /** Maximum number of entries over all layers. */
  maxEntries: number;
  /** Maximum bytes of file content written over all layers. */
  maxFileBytes: number;
}

/** xattr namespaces copied into the image; the rest (trusted.*, security.selinux...) could confuse the guest's overlayfs or LSMs. */
function xattrAllowed(name: string): boolean {
  return name === 'security.capability' || name.startsWith('user.');
}

const MAX_SYMLINK_HOPS = 40;

interface PendingXattr {
  path: string;
  ino: number;
  xattrs: Map<string, Buffer>;
}

/** A TreeWriter's bookkeeping after some layers; directory paths relative to the root. */
export interface TreeState {
  entries: number;
  fileBytes: number;
  stats: TreeWriter['stats'];
  dirTimes: Array<[string, number]>;
}

export class TreeWriter implements TarSink {
  private entries = 0;
  private fileBytes = 0;
  private fd = -1;
  private fdMeta: TarHeader | undefined;
  private touched = new Set<string>();
  private xattrs: PendingXattr[] = [];
  private readonly dirTimes = new Map<string, number>();
  /** Entries skipped because they name the tree root's parent chain etc. are not counted. */
  stats = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, devices: 0, whiteouts: 0 };

  constructor(
    readonly root: string,
    private readonly limits: TreeLimits,
  ) {}

  /** Start a new layer: whiteouts only hide what earlier layers created. */
  beginLayer(): void {
    this.touched = new Set();
    this.xattrs = [];
  }

  /** Finish a layer: set its extended attributes (Node has no setxattr). */
  endLayer(): void {
    this.closeFile();
    const todo: [string, string, string][] = [];
    for (const p of this.xattrs) {
      let st: Stats;
      try {
        st = lstatSync(p.path);
      } catch {
        continue;
      }
      if (st.ino !== p.ino || st.isSymbolicLink()) continue;
      for (const [k, v] of p.xattrs) todo.push([p.path, k, v.toString('hex')]);
    }
    this.xattrs = [];
    if (!todo.length) return;
    const script =
      'import json,os,sys\nfor p,n,v in json.load(sys.stdin): os.setxattr(p,n,bytes.fromhex(v),follow_symlinks=False)\n';
    const r = spawnSync('python3', ['-c', script], { input: JSON.stringify(todo), encoding: 'utf8' });
    if (r.error || r.status !== 0)
      throw new Error(`could not set extended attributes: ${r.error?.message ?? r.stderr.trim().split('\n').pop()}`);
  }

  /** After the last layer: directory mtimes (writing children changed them). */
  finish(): void {
    this.closeFile();
    this.settleDirTimes();
  }

  /** Set every directory's mtime from its entry, deepest first (also before a tree is kept mid-way). */
  settleDirTimes(): void {
    const dirs = [...this.dirTimes].sort((a, b) => b[0].length - a[0].length);
    for (const [p, t] of dirs) {
      try {
        lutimesSync(p, t, t);
      } catch {
        // removed by a later layer
      }
    }
  }

  /** What a tree kept after some layers carries into the build that resumes from it. */
  exportState(): TreeState {
    return { entries: this.entries, fileBytes: this.fileBytes, stats: { ...this.stats }, dirTimes: [...this.dirTimes].map(([p, t]) => [relative(this.root, p), t]) };
  }

  /** Continue on a clone of a kept tree: its limits' counters, stats and directory times. */
  importState(s: TreeState): void {
    this.entries = s.entries;
    this.fileBytes = s.fileBytes;
    this.stats = { ...s.stats };
    for (const [p, t] of s.dirTimes) this.dirTimes.set(join(this.root, p), t);
  }

  abort(): void {
    this.closeFile();
  }

  entry(h: TarHeader): void {
    if (++this.entries > this.limits.maxEntries)
      throw new LayerLimitError(`the image has more than ${this.limits.maxEntries} entries (limit)`);
    const parts = splitName(h.name);
    if (parts.length === 0) {
      // "./": the root directory itself
      if (h.type !== 'dir') throw new UnsafeEntryError(`entry ${JSON.stringify(h.name)} would replace the root directory`);
      this.setDirMeta(this.root, h);
      return;
    }
    const base = parts.pop()!;
    if (base.startsWith('.wh.')) return this.whiteout(h.name, parts, base);

    const parent = this.resolveDir(parts, true, h.name)!;
    const target = `${parent}/${base}`;
    this.touched.add(target);
    const existing = lstatOrUndefined(target);

    switch (h.type) {
      case 'dir':
        if (existing && !existing.isDirectory()) removeAny(target, existing);
        if (!existing || !existing.isDirectory()) mkdirSync(target, 0o700);
        this.setDirMeta(target, h);
        this.stats.dirs++;
        return;
      case 'file': {
        if (existing) removeAny(target, existing);
        if (h.size > 0 && (this.fileBytes += h.size) > this.limits.maxFileBytes)
          throw new LayerLimitError(`the image expands to more than ${this.limits.maxFileBytes} bytes of files (limit)`);
        this.fd = openSync(target, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
        this.fdMeta = h;
        this.stats.files++;
        if (h.xattrs.size) this.queueXattrs(target, h);
        return;
      }
      case 'symlink':
        if (existing) removeAny(target, existing);
        symlinkSync(h.linkname, target);
        lchownSync(target, h.uid, h.gid);
        lutimesSync(target, h.mtime, h.mtime);
        this.stats.symlinks++;
        return;
      case 'hardlink': {
        const src = this.resolveLinkTarget(h);
        const srcSt = lstatSync(src);
        if (existing && existing.ino === srcSt.ino && existing.dev === srcSt.dev) return;
        if (existing) removeAny(target, existing);
        // link(2) does not follow a symlink source: a link to a symlink stays a symlink.
        linkSync(src, target);
        this.stats.hardlinks++;
        return;
      }
      case 'chardev':
      case 'blockdev':
      case 'fifo': {
        if (existing) removeAny(target, existing);
        const args =
          h.type === 'fifo'
            ? [target, 'p']
            : [target, h.type === 'chardev' ? 'c' : 'b', String(h.devmajor), String(h.devminor)];
        const r = spawnSync('mknod', args, { encoding: 'utf8' });
        if (r.error || r.status !== 0) throw new Error(`mknod ${h.name} failed: ${r.error?.message ?? r.stderr.trim()}`);
        lchownSync(target, h.uid, h.gid);
        // The node was just created by us and is not a symlink, so chmod by path is safe.
        chmodSync(target, h.mode);
        lutimesSync(target, h.mtime, h.mtime);
        if (h.xattrs.size) this.queueXattrs(target, h);
        this.stats.devices++;
        return;
      }
    }
  }

  data(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) off += writeSync(this.fd, chunk, off, chunk.length - off);
  }

  endEntry(): void {
    this.closeFile();
  }

  private closeFile(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    const h = this.fdMeta!;
    this.fd = -1;
    try {
      // chown first: it clears setuid/setgid bits that chmod then sets.
      fchownSync(fd, h.uid, h.gid);
      fchmodSync(fd, h.mode);
      futimesSync(fd, h.mtime, h.mtime);
    } finally {
      closeSync(fd);
    }
  }

  private setDirMeta(path: string, h: TarHeader): void {
    lchownSync(path, h.uid, h.gid);
    // path was just checked (lstat) to be a real directory, not a symlink.
    chmodSync(path, h.mode);
    this.dirTimes.set(path, h.mtime);
    if (h.xattrs.size) this.queueXattrs(path, h);
  }

  private queueXattrs(path: string, h: TarHeader): void {
    const keep = new Map([...h.xattrs].filter(([k]) => xattrAllowed(k)));
    if (!keep.size) return;
    this.xattrs.push({ path, ino: lstatSync(path).ino, xattrs: keep });
  }

  private whiteout(name: string, parts: string[], base: string): void {
    this.stats.whiteouts++;
    const parent = this.resolveDir(parts, false, name);
    if (base === '.wh..wh..opq') {
      if (parent) this.opaque(parent);
      return;
    }
    // Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs) carries nothing for us.
    if (base.startsWith('.wh..wh.')) return;
    const victim = base.slice(4);
    if (victim === '' || victim === '.' || victim === '..')
      throw new UnsafeEntryError(`invalid whiteout ${JSON.stringify(name)} (it names no file)`);
    if (!parent) return;
    const p = `${parent}/${victim}`;
    // A whiteout only hides lower layers' files, never ones from its own layer.
    if (this.touched.has(p)) return;
    const st = lstatOrUndefined(p);
    if (st) removeAny(p, st);
  }

  private opaque(dir: string): void {
    for (const child of readdirSync(dir)) {
      const p = `${dir}/${child}`;
      if (this.touched.has(p)) {
        if (lstatSync(p).isDirectory()) this.opaque(p);
        continue;
      }
      rmSync(p, { recursive: true, force: true });
    }
  }

  private resolveLinkTarget(h: TarHeader): string {
    const parts = splitName(h.linkname, 'hard link target');
    if (parts.length === 0) throw new UnsafeEntryError(`hard link ${JSON.stringify(h.name)} points at the root directory`);
    const base = parts.pop()!;
    const parent = this.resolveDir(parts, false, h.name);
    const src = parent && `${parent}/${base}`;
    const st = src ? lstatOrUndefined(src) : undefined;
    if (!src || !st)
      throw new UnsafeEntryError(`hard link ${JSON.stringify(h.name)} points at ${JSON.stringify(h.linkname)}, which does not exist`);
    if (st.isDirectory()) throw new UnsafeEntryError(`hard link ${JSON.stringify(h.name)} points at a directory`);
    return src;
  }

  /**
   * Resolve directory components under the root without ever leaving it.
   * create: make missing directories (0755, as tar does for implied parents).
   * Returns undefined when a component is missing and create is false.
   */
  private resolveDir(parts: string[], create: boolean, entryName: string): string | undefined {
    const stack: string[] = [];
    const queue = parts.slice().reverse(); // pop() from the end = next component
    let hops = 0;
    while (queue.length) {
      const c = queue.pop()!;
      if (c === '' || c === '.') continue;
      if (c === '..') {
        stack.pop(); // stays at the root, as `/..` does
        continue;
      }
      const p = stack.length ? `${this.root}/${stack.join('/')}/${c}` : `${this.root}/${c}`;
      const st = lstatOrUndefined(p);
      if (!st) {
        if (!create) return undefined;
        mkdirSync(p, 0o755);
        stack.push(c);
        continue;
      }
      if (st.isDirectory()) {
        stack.push(c);
      } else if (st.isSymbolicLink()) {
        if (++hops > MAX_SYMLINK_HOPS)
          throw new UnsafeEntryError(`too many levels of symbolic links resolving ${JSON.stringify(entryName)}`);
        const t = readlinkSync(p);
        if (t.startsWith('/')) stack.length = 0;
        const tp = t.split('/');
        for (let i = tp.length - 1; i >= 0; i--) queue.push(tp[i]!);
      } else {
        throw new UnsafeEntryError(
          `entry ${JSON.stringify(entryName)} needs ${JSON.stringify('/' + [...stack, c].join('/'))} to be a directory, but it is a file`,
        );
      }
    }
    return stack.length ? `${this.root}/${stack.join('/')}` : this.root;
  }
}

/**
 * Split an archive name into components. Leading "./" is normal; absolute
 * names and ".." components are never produced by image builders and are
 * refused rather than silently re-rooted.
 */
export function splitName(name: string, what = 'entry'): string[] {
  if (name.startsWith('/')) throw new UnsafeEntryError(`${what} ${JSON.stringify(name)} is an absolute path`);
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') throw new UnsafeEntryError(`${what} ${JSON.stringify(name)} contains a ".." component`);
    out.push(c);
  }
  return out;
}

function lstatOrUndefined(p: string): Stats | undefined {
  // throwIfNoEntry: no exception object per missing path (most entries are new).
  return lstatSync(p, { throwIfNoEntry: false });
}

function removeAny(p: string, st: Stats): void {
  // rmSync never follows symlinks inside the tree it removes.
  if (st.isDirectory()) rmSync(p, { recursive: true, force: true });
  else unlinkSync(p);
}
