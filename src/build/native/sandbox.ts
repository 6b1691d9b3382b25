import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { lineSplitter, run } from '../../shared/process.js';

/**
 * RUN steps: the command runs chrooted in an overlay of the stage's layers,
 * in fresh mount, PID, IPC and UTS namespaces, with the host's network (as
 * buildah's chroot isolation and BuildKit's default do). Everything it
 * writes lands in the overlay's upper directory, which becomes the layer.
 *
 * All mounts are made inside the new mount namespace by one fixed script (from
 * an fstab the daemon writes), so they vanish with the step's PID 1 even if
 * the daemon dies mid-step. The script takes its inputs as arguments; nothing
 * from the Dockerfile is ever interpreted by a shell on the host.
 */
const SCRIPT = `#!/bin/sh
# Written by the Hangar daemon: the mounts of one RUN step, then the step.
# Usage: run-step.sh FSTAB ENV... /usr/bin/unshare ...
# FSTAB lists the overlay, /proc, /sys, /dev/shm and the read-only binds, in
# order: one mount(8) run instead of one per mount.
set -eu
mount -a -T "$1"
shift
exec env -i -- "$@"
`;

/** Device nodes every step gets (a tmpfs /dev would be one more mount per step; nodes in a bottom layer cost nothing). */
const DEVICES: Array<[string, number, number]> = [
  ['null', 1, 3],
  ['zero', 1, 5],
  ['full', 1, 7],
  ['random', 1, 8],
  ['urandom', 1, 9],
  ['tty', 5, 0],
];

export interface Bind {
  /** Host file (a private copy: the step may not write through it). */
  source: string;
  /** Absolute path inside the image. */
  target: string;
}

export interface RunStep {
  /** Layer directories, topmost first, relative to `cwd` (overlay's option string is limited to a page). */
  lowers: string[];
  upper: string;
  work: string;
  merged: string;
  /** Directory the relative paths above are relative to. */
  cwd: string;
  binds: Bind[];
  env: string[];
  uid: number;
  gid: number;
  /** Supplementary groups; the first is `gid`. */
  groups: number[];
  workdir: string;
  argv: string[];
  onLine: (line: string) => void;
  signal?: AbortSignal;
}

export class Sandbox {
  private readonly script: string;
  /** Bottom layer with the mount points and device nodes a step needs; below the image, so the image's own entries win. */
  readonly skeleton: string;
  private ready: Promise<void> | undefined;

  constructor(private readonly root: string) {
    this.script = join(root, 'run-step.sh');
    this.skeleton = join(root, 'skeleton');
  }

  /** Write the script and the skeleton layer once per daemon. */
  prepare(): Promise<void> {
    this.ready ??= (async () => {
      mkdirSync(this.root, { recursive: true });
      writeFileSync(this.script, SCRIPT, { mode: 0o700 });
      const sk = `${this.skeleton}.tmp`;
      if (existsSync(join(this.skeleton, 'dev', 'urandom'))) return;
      for (const d of ['proc', 'sys', 'dev/shm', 'dev/pts', 'etc', 'run/secrets', 'tmp']) mkdirSync(join(sk, d), { recursive: true, mode: 0o755 });
      chmodSync(join(sk, 'tmp'), 0o1777);
      for (const f of ['etc/resolv.conf', 'etc/hosts']) writeFileSync(join(sk, f), '');
      for (const [name, major, minor] of DEVICES) {
        if (!existsSync(join(sk, 'dev', name))) await run('mknod', ['-m', '666', join(sk, 'dev', name), 'c', String(major), String(minor)]);
      }
      for (const [name, target] of [['fd', '/proc/self/fd'], ['stdin', '/proc/self/fd/0'], ['stdout', '/proc/self/fd/1'], ['stderr', '/proc/self/fd/2'], ['ptmx', 'pts/ptmx']] as const) {
        rmSync(join(sk, 'dev', name), { force: true });
        symlinkSync(target, join(sk, 'dev', name));
      }
      rmSync(this.skeleton, { recursive: true, force: true });
      renameSync(sk, this.skeleton);
    })().catch((err) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  /**
   * Make a bottom layer holding an empty file at each bind target that the
   * skeleton lacks, so binding never writes a mount point into the step's
   * upper directory (and so into the image).
   */
  static mountPoints(dir: string, binds: Bind[]): void {
    for (const b of binds) {
      const p = join(dir, b.target);
      mkdirSync(dirname(p), { recursive: true, mode: 0o755 });
      writeFileSync(p, '');
    }
  }

  /** Run one step; resolves with its exit code. */
  run(step: RunStep): Promise<number> {
    const m = step.merged;
    const fstab = [
      ['overlay', m, 'overlay', `lowerdir=${step.lowers.join(':')},upperdir=${step.upper},workdir=${step.work},redirect_dir=off,metacopy=off,index=off,xino=off`],
      ['proc', `${m}/proc`, 'proc', 'nosuid,nodev,noexec'],
      ['sysfs', `${m}/sys`, 'sysfs', 'ro,nosuid,nodev,noexec'],
      ['shm', `${m}/dev/shm`, 'tmpfs', 'nosuid,nodev,mode=1777'],
      ...step.binds.map((b) => [b.source, `${m}/${b.target.replace(/^\/+/, '')}`, 'none', 'bind,ro']),
    ]
      .map((fields) => `${fields.map(fstabField).join(' ')} 0 0\n`)
      .join('');
    const fstabFile = `${m}.fstab`;
    const extraGroups = step.groups.length > 1;
    writeFileSync(fstabFile, fstab);
    const args = [
      '--mount', '--pid', '--ipc', '--uts', '--fork', '--kill-child', '--propagation', 'private', '--',
      '/bin/sh', this.script, fstabFile,
      ...step.env,
      // unshare's --setgid also clears the supplementary groups; a user with
      // more groups gets them from setpriv first (still root, so the chroot
      // works), and unshare then only changes the uid.
      ...(extraGroups ? ['/usr/bin/setpriv', `--regid=${step.gid}`, `--groups=${step.groups.join(',')}`, '--'] : []),
      '/usr/bin/unshare', `--root=${step.merged}`, `--wd=${step.workdir}`, '--setuid', String(step.uid),
      ...(extraGroups ? [] : ['--setgid', String(step.gid)]),
      '--',
      ...step.argv,
    ];
    return new Promise((resolve, reject) => {
      const child = spawn('unshare', args, { cwd: step.cwd, stdio: ['ignore', 'pipe', 'pipe'], signal: step.signal, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
      child.stdout.on('data', lineSplitter(step.onLine));
      child.stderr.on('data', lineSplitter(step.onLine));
      child.on('error', (e: NodeJS.ErrnoException) => (e.name === 'AbortError' ? resolve(130) : reject(e)));
      child.on('close', (code, sig) => resolve(code ?? (sig ? 128 : 1)));
    });
  }

  /** A private copy of a host file for a read-only bind (a step could otherwise write through to the host's). */
  static privateCopy(from: string, to: string): string {
    if (existsSync(from)) copyFileSync(from, to);
    else writeFileSync(to, '');
    return to;
  }
}

/** fstab(5) escapes: a field may not hold whitespace or a backslash as such. */
export function fstabField(s: string): string {
  return s.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}
