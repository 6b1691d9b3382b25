import { mkdirSync, mkdtempSync, rmSync, lstatSync, readdirSync, readlinkSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

export function tempDir(prefix = 'hangar-rootfs-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Look inside an EROFS image: loop-mount it read-only (we are root; the
 * kernel reads it exactly as a guest will). fsck.erofs --extract is not used
 * because it drops setuid/setgid bits.
 */
export function mountErofs(image: string, at: string): { dir: string; unmount: () => void } {
  mkdirSync(at, { recursive: true });
  execFileSync('mount', ['-t', 'erofs', '-o', 'loop,ro', image, at], { stdio: 'pipe' });
  return { dir: at, unmount: () => execFileSync('umount', [at], { stdio: 'pipe' }) };
}

/**
 * A snapshot of everything under `dir` (type, mode, owner, size, content hash,
 * link target, mtime): compare before/after to prove nothing outside the
 * target root was created, changed or deleted.
 */
export function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (p: string, rel: string) => {
    const st = lstatSync(p);
    let desc = `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.mtimeMs} ${st.nlink}`;
    if (st.isSymbolicLink()) desc += ` -> ${readlinkSync(p)}`;
    else if (st.isFile()) desc += ` ${st.size} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
    out.set(rel || '.', desc);
    if (st.isDirectory()) for (const n of readdirSync(p).sort()) walk(join(p, n), rel ? `${rel}/${n}` : n);
  };
  walk(dir, '');
  return out;
}
