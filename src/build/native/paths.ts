import { lstatSync, readlinkSync } from 'node:fs';
import { join, posix } from 'node:path';
import { HangarError } from '../../shared/errors.js';

const MAX_SYMLINK_HOPS = 40;

/**
 * The host path of image path `p` inside the tree at `root`, resolving
 * symlinks as the image would see them: an absolute link target or `..`
 * never leaves `root`. Every path the builder reads or writes on behalf of
 * a Dockerfile goes through here (a hostile base image's `/etc/passwd ->
 * /host/file` must not reach the host). Missing components are fine: the
 * result is where the path would be. `followLast` false keeps a final
 * symlink itself.
 */
export function pathInRoot(root: string, p: string, followLast = true): string {
  const todo = p.split('/').filter(Boolean).reverse();
  const done: string[] = [];
  let hops = 0;
  while (todo.length) {
    const part = todo.pop()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = join(root, ...done, part);
    let link: string | undefined;
    try {
      if ((todo.length > 0 || followLast) && lstatSync(host).isSymbolicLink()) link = readlinkSync(host);
    } catch {
      // Missing: the rest is taken literally.
    }
    if (link === undefined) {
      done.push(part);
      continue;
    }
    if (++hops > MAX_SYMLINK_HOPS) throw new HangarError('BUILD_FAILED', `too many levels of symbolic links resolving ${p} in the image`, { status: 422 });
    if (link.startsWith('/')) done.length = 0;
    todo.push(...link.split('/').filter(Boolean).reverse());
  }
  return join(root, ...done);
}

/** Image path `p` made absolute against the working directory, normalised (a trailing slash is kept: it means "a directory"). */
export function imagePath(p: string, workdir: string): string {
  const abs = posix.resolve('/', workdir || '/', p);
  return p.endsWith('/') && abs !== '/' ? `${abs}/` : abs;
}
