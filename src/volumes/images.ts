import { statSync } from 'node:fs';
import { truncate } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { HangarError } from '../shared/errors.js';
import { run } from '../shared/process.js';

export const GIB = 1024 ** 3;

/**
 * Volume images: sparse ext4 files. Only e2fsprogs and coreutils touch them;
 * every command runs with an argv array.
 */

/** A new, empty, sparse ext4 filesystem of `sizeGb`. */
export async function makeFilesystem(path: string, sizeGb: number, label: string): Promise<void> {
  await run('truncate', ['-s', String(sizeGb * GIB), path]);
  // Lazy init keeps creation O(metadata): inode tables and the journal are
  // zeroed by the guest kernel in the background instead. -m 0: a data
  // volume has no use for blocks reserved to root.
  await run('mkfs.ext4', ['-F', '-q', '-m', '0', '-L', label.slice(0, 16), '-E', 'lazy_itable_init=1,lazy_journal_init=1', path]);
}

/** Copy an image keeping holes (and sharing blocks where the host fs can reflink). */
export async function copyImage(from: string, to: string): Promise<void> {
  await run('cp', ['--reflink=auto', '--sparse=always', from, to]);
}

/** e2fsck -fp; exit 0 (clean) and 1 (fixed) are fine, anything else is not. */
async function check(path: string): Promise<void> {
  const r = await run('e2fsck', ['-f', '-p', path], { allowFailure: true });
  if (r.code & ~1) {
    throw new HangarError('VOLUME_CORRUPT', `the filesystem in ${path} has errors e2fsck -p could not fix (exit ${r.code}); stop its machine and run \`e2fsck -f ${path}\` on the host`, { status: 500 });
  }
}

/** Grow an unused image to `sizeGb` and its filesystem with it. */
export async function growOffline(path: string, sizeGb: number): Promise<void> {
  await growFile(path, sizeGb);
  await check(path);
  await run('resize2fs', [path]);
}

/** Grow the file only (its filesystem is grown at the next attach). */
export async function growFile(path: string, sizeGb: number): Promise<void> {
  const want = sizeGb * GIB;
  if (statSync(path).size < want) await truncate(path, want);
}

/**
 * The same as growOffline, but synchronous: attach runs inside the machine
 * boot path, which expects mounts back without awaiting.
 */
export function growOfflineSync(path: string): void {
  const r = (args: string[], file: string, okCodes: number[]) => {
    try {
      execFileSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    } catch (err) {
      const code = (err as { status?: number }).status ?? -1;
      if (!okCodes.includes(code)) {
        throw new HangarError('VOLUME_RESIZE_FAILED', `${file} on ${path} failed (exit ${code}): ${String((err as { stderr?: Buffer }).stderr ?? '').trim().slice(-500)}`, { status: 500 });
      }
    }
  };
  r(['-f', '-p', path], 'e2fsck', [0, 1]);
  r([path], 'resize2fs', [0]);
}

/** Filesystem geometry from the superblock, for Fly's blocks fields. */
export async function geometry(path: string): Promise<{ block_size: number; blocks: number; blocks_free: number; blocks_avail: number } | undefined> {
  const r = await run('dumpe2fs', ['-h', path], { allowFailure: true });
  if (r.code !== 0) return undefined;
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(r.stdout)?.[1] ?? NaN);
  const blocks = field('Block count');
  const free = field('Free blocks');
  const reserved = field('Reserved block count');
  const size = field('Block size');
  if (![blocks, free, reserved, size].every(Number.isFinite)) return undefined;
  return { block_size: size, blocks, blocks_free: free, blocks_avail: Math.max(0, free - reserved) };
}

/** Bytes actually allocated on the host (the image is sparse). */
export function allocatedBytes(path: string): number {
  return statSync(path).blocks * 512;
}
