import { z } from 'zod';

/** Fly's rule: lowercase letters, digits and underscores, at most 30 characters. */
export const VOLUME_NAME = /^[a-z0-9_]{1,30}$/;
export const MIN_SIZE_GB = 1;
export const DEFAULT_SIZE_GB = 1;
export const MAX_SIZE_GB = 500;
export const DEFAULT_SNAPSHOT_RETENTION_DAYS = 5;

export const volumeName = z
  .string()
  .regex(VOLUME_NAME, 'must be 1-30 characters of lowercase letters, digits and underscores (e.g. data or pg_data)');

export const sizeGb = (max = MAX_SIZE_GB) =>
  z
    .number({ message: 'must be a whole number of gigabytes' })
    .int('must be a whole number of gigabytes')
    .min(MIN_SIZE_GB, `must be at least ${MIN_SIZE_GB} GB`)
    .max(max, `must be at most ${max} GB`);

/** Guest directories a volume must never cover: the root and the kernel's own filesystems. */
const RESERVED = ['/proc', '/sys', '/dev'];

/**
 * Why a guest mount path is unusable, or undefined when it is fine. Shared by
 * the machine config schema and the attach step (configs stored before a
 * rule existed are checked again at boot).
 */
export function mountPathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'must be an absolute path such as /data';
  if (path.length > 255) return 'must be at most 255 characters';
  if (path.includes('\0')) return 'must not contain NUL';
  const parts = path.split('/').slice(1);
  if (parts[parts.length - 1] === '') parts.pop();
  if (parts.length === 0) return 'cannot be / (the root filesystem is the image); mount the volume at a directory such as /data';
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return 'must be a normalised path (no //, . or ..)';
  const norm = '/' + parts.join('/');
  for (const r of RESERVED) {
    if (norm === r || norm.startsWith(r + '/')) return `cannot be inside ${r} (the guest kernel mounts its own filesystem there); use a directory such as /data`;
  }
  return undefined;
}

export function normaliseMountPath(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}
