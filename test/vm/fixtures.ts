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
