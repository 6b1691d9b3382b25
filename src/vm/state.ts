import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readlinkSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Accel, ForwardedPort, VmExit } from './types.js';

/**
 * vm.json in a VM's state dir: what a later daemon process needs to find the
 * qemu it started and to tell it apart from an unrelated process that
 * reused the pid (the start time in /proc/<pid>/stat).
 */
export interface VmMeta {
  version: 1;
  driver: 'qemu';
  id: string;
  pid: number;
  pidStartTime: string;
  accel: Accel;
  ports: ForwardedPort[];
  startedAt: number;
}

export const FILES = {
  meta: 'vm.json',
  exit: 'exit.json',
  console: 'console.log',
  logs: 'logs.rec',
  ctl: 'ctl.sock',
  qmp: 'qmp.sock',
  stderr: 'qemu.stderr',
  initrd: 'initrd.img',
} as const;

export function readMeta(stateDir: string): VmMeta | undefined {
  try {
    const m = JSON.parse(readFileSync(join(stateDir, FILES.meta), 'utf8')) as VmMeta;
    return m && m.version === 1 && typeof m.pid === 'number' ? m : undefined;
  } catch {
    return undefined;
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileSync(`${path}.tmp`, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

export function readExit(stateDir: string): VmExit | undefined {
  try { return JSON.parse(readFileSync(join(stateDir, FILES.exit), 'utf8')) as VmExit; } catch { return undefined; }
}

/** Field 22 of /proc/<pid>/stat, or undefined if the process is gone or a zombie. */
export function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
    return rest[19];
  } catch {
    return undefined;
  }
}

export function isSameProcess(pid: number, startTime: string): boolean {
  return pid > 0 && procStartTime(pid) === startTime;
}

/**
 * Unix socket paths are limited to 107 bytes. qemu gets paths relative to
 * its cwd (the state dir); the daemon connects through a short symlink to
 * the state dir when the absolute path would be too long.
 */
export function socketPath(stateDir: string, name: string): string {
  const direct = join(stateDir, name);
  if (Buffer.byteLength(direct) < 100) return direct;
  const dir = join(tmpdir(), 'hangar-vm-links');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const link = join(dir, createHash('sha256').update(stateDir).digest('hex').slice(0, 16));
  try {
    if (readlinkSync(link) !== stateDir) throw new Error('stale');
  } catch {
    try { symlinkSync(stateDir, `${link}.new`); renameSync(`${link}.new`, link); } catch { /* raced: fine if it points right */ }
  }
  return join(link, name);
}
