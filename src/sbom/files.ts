/**
 * The few files package catalogers read, gathered from image layers or a
 * directory. Paths are relative to the image root, without a leading slash.
 * Symlinks are kept (all of them; they are tiny) so canonical locations such
 * as /etc/os-release -> ../usr/lib/os-release resolve the way they would in
 * the running image.
 */
export interface FileView {
  files: Map<string, Buffer>;
  symlinks: Map<string, string>;
  /** Files whose presence matters but whose content is not read (legacy rpm databases). */
  markers: Set<string>;
}

const INTERESTING: RegExp[] = [
  /^(etc|usr\/lib)\/os-release$/,
  /(^|\/)dpkg\/status$/,
  /(^|\/)dpkg\/status\.d\/[^/]+$/,
  /(^|\/)apk\/db\/installed$/,
  /(^|\/)rpm\/rpmdb\.sqlite$/,
  /(^|\/)package-lock\.json$/,
  /(^|\/)node_modules\/(@[^/]+\/)?[^/@][^/]*\/package\.json$/,
  /\.dist-info\/METADATA$/,
  /\.egg-info\/PKG-INFO$/,
  /\.egg-info$/,
];

const MARKERS = /(^|\/)rpm\/Packages(\.db)?$/;

/** Whether a file is only noted as present. */
export function isMarker(path: string): boolean {
  return MARKERS.test(path);
}

/** Whether a regular file at `path` can hold package data. */
export function isInteresting(path: string): boolean {
  return INTERESTING.some((re) => re.test(path));
}

/** Per-file and total limits: package databases are small; anything bigger is not one. */
export const MAX_FILE_BYTES = 256 * 1024 * 1024;
export const MAX_TOTAL_BYTES = 1024 * 1024 * 1024;
/** Symlinks are all kept for path resolution; a layer with millions of them is an attack, not an image. */
export const MAX_SYMLINKS = 1_000_000;

/**
 * Resolve `path` through the view's symlinks (any component), like the kernel
 * would inside the image root. Returns the real path, or undefined on a loop.
 */
export function resolvePath(view: FileView, path: string): string | undefined {
  let parts = path.split('/').filter((p) => p && p !== '.');
  let hops = 0;
  for (let i = 0; i < parts.length; i++) {
    const prefix = parts.slice(0, i + 1).join('/');
    const target = view.symlinks.get(prefix);
    if (target === undefined) continue;
    if (++hops > 40) return undefined;
    const base = target.startsWith('/') ? [] : parts.slice(0, i);
    const joined: string[] = [];
    for (const seg of [...base, ...target.split('/'), ...parts.slice(i + 1)]) {
      if (!seg || seg === '.') continue;
      if (seg === '..') joined.pop();
      else joined.push(seg);
    }
    parts = joined;
    i = -1;
  }
  return parts.join('/');
}

/** Read a file at its canonical path, following symlinks. */
export function readFile(view: FileView, path: string): { path: string; data: Buffer } | undefined {
  const real = resolvePath(view, path);
  if (real === undefined) return undefined;
  const data = view.files.get(real);
  return data ? { path: real, data } : undefined;
}
