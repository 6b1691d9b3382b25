import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, chownSync, copyFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/shared/process.js';

export interface RootfsOptions {
  /** write /etc/passwd and /etc/group (default true) */
  passwd?: boolean;
  /** customise the tree before it is packed */
  customize?: (root: string) => void;
}

const BUSYBOX = '/bin/busybox';

/**
 * A small EROFS root filesystem: Debian's static busybox with every applet
 * linked, a root and a non-root user (app, uid 1000, in group "extra").
 */
export async function makeRootfs(workDir: string, name: string, opts: RootfsOptions = {}): Promise<string> {
  const root = join(workDir, `${name}.tree`);
  rmSync(root, { recursive: true, force: true });
  for (const d of ['bin', 'etc', 'home/app', 'srv/www', 'tmp', 'root']) mkdirSync(join(root, d), { recursive: true });
  chmodSync(join(root, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  const { stdout } = await run(BUSYBOX, ['--list']);
  for (const applet of stdout.split('\n').map((s) => s.trim()).filter((s) => s && s !== 'busybox')) {
    symlinkSync('busybox', join(root, 'bin', applet));
  }
  if (opts.passwd !== false) {
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n');
  }
  chownSync(join(root, 'home/app'), 1000, 1000);
  writeFileSync(join(root, 'srv/www/index.html'), 'hello from the guest\n');
  opts.customize?.(root);
  const image = join(workDir, `${name}.erofs`);
  await run('mkfs.erofs', ['--quiet', image, root]);
  rmSync(root, { recursive: true, force: true });
  return image;
}

export function tempDir(prefix = 'hangar-vm-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

import type { LogLine, VmHandle } from '../../src/vm/index.js';

/** Under TCG on a loaded 2-core host a boot can take 10-20 s. */
export const BOOT_TIMEOUT_MS = 180_000;

export function collectLogs(h: VmHandle) {
  const lines: LogLine[] = [];
  h.on('log', (l) => lines.push(l));
  return {
    lines,
    text: (stream?: LogLine['stream']) => lines.filter((l) => !stream || l.stream === stream).map((l) => l.line),
    waitFor(pred: (l: LogLine) => boolean, timeoutMs = BOOT_TIMEOUT_MS): Promise<LogLine> {
      const hit = lines.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const onLog = (l: LogLine) => { if (pred(l)) { cleanup(); resolve(l); } };
        const onExit = () => { cleanup(); reject(new Error(`VM exited before the expected line; logs:\n${lines.map((l) => `${l.stream}: ${l.line}`).join('\n')}\nconsole:\n${h.consoleTail().join('\n')}`)); };
        const timer = setTimeout(() => { cleanup(); reject(new Error(`timed out waiting for a log line; console:\n${h.consoleTail().join('\n')}`)); }, timeoutMs);
        const cleanup = () => { clearTimeout(timer); h.off('log', onLog); h.off('exit', onExit); };
        h.on('log', onLog);
        h.on('exit', onExit);
      });
    },
  };
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e) => { clearTimeout(t); reject(e); });
  });
}
