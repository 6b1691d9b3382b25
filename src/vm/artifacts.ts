import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HangarError } from '../shared/errors.js';

/** What scripts/setup.d/20-guest.sh builds. */
export interface GuestArtifacts {
  dir: string;
  /** uncompressed kernel, booted through PVH */
  vmlinux: string;
  /** base initramfs: init + modules; the per-machine config cpio is appended */
  initramfs: string;
  kernelVersion: string;
}

/** Repository root: $HANGAR_ROOT, else derived from this file (dist/src/vm/ or src/vm/). */
export function hangarRoot(): string {
  if (process.env.HANGAR_ROOT) return process.env.HANGAR_ROOT;
  const here = fileURLToPath(new URL('.', import.meta.url));
  const up = here.includes(`${join('dist', 'src', 'vm')}`) ? '../../..' : '../..';
  return join(here, up);
}

/** $HANGAR_GUEST_DIR, else <root>/.cache/guest (where the setup puts them). */
export function guestDir(): string {
  return process.env.HANGAR_GUEST_DIR || join(hangarRoot(), '.cache', 'guest');
}

export function findGuestArtifacts(): GuestArtifacts {
  const dir = guestDir();
  const vmlinux = join(dir, 'vmlinux');
  const initramfs = join(dir, 'initramfs.cpio');
  if (!existsSync(vmlinux) || !existsSync(initramfs)) {
    throw new HangarError(
      'GUEST_MISSING',
      `the guest kernel and initramfs are missing from ${dir}; run scripts/setup.sh (or set HANGAR_GUEST_DIR to where they are)`,
      { status: 500 },
    );
  }
  let kernelVersion = 'unknown';
  try { kernelVersion = readFileSync(join(dir, 'kernel.version'), 'utf8').trim(); } catch { /* optional */ }
  return { dir, vmlinux, initramfs, kernelVersion };
}

/** qemu binary; HANGAR_QEMU overrides it (e.g. a fake for failure tests). */
export function qemuBinary(): string {
  return process.env.HANGAR_QEMU || 'qemu-system-x86_64';
}
