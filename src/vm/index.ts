/**
 * vm/: boots machines as qemu microVMs (docs/vm.md).
 *
 *   const h = await startVm({ id, stateDir, rootfs, run: { image: {...}, env }, ports: [{ guestPort: 8080 }] });
 *   h.on('log', ({ stream, line }) => ...);
 *   const exit = await h.waitExit();
 *
 * After a daemon restart: adoptVm(stateDir) per machine, or reconcileVms(root, keep).
 */
import { QemuDriver } from './qemu.js';
import type { AdoptOptions, VmDriver, VmHandle, VmSpec } from './types.js';

export type * from './types.js';
export { findGuestArtifacts, guestDir, qemuBinary, type GuestArtifacts } from './artifacts.js';
export { resolveAccel, probeKvm } from './accel.js';
export { compileRunConfig, resolveCommand, resolveEnv, runConfigSchema, GUEST_NET } from './runconfig.js';
export { reconcileVms, QemuDriver, buildQemuArgs, parseUsernet, type ReconcileResult } from './qemu.js';
export { readMeta, readExit, FILES as VM_FILES, type VmMeta } from './state.js';
export { signalNumber } from './handle.js';

/** Exit codes of the guest init itself (reason "init_error"); see docs/guest-init.md. */
export const INIT_EXIT_CODES = {
  config: 200,
  device: 201,
  rootfs_mount: 202,
  hostile_rootfs: 203,
  no_passwd: 204,
  unknown_user: 205,
  entrypoint_not_found: 206,
  entrypoint_not_executable: 207,
  workdir: 208,
  setup: 209,
  no_command: 210,
} as const;

let defaultDriver: VmDriver = new QemuDriver();

export function getVmDriver(): VmDriver { return defaultDriver; }
/** For tests or another hypervisor backend. */
export function setVmDriver(d: VmDriver): void { defaultDriver = d; }

export function startVm(spec: VmSpec): Promise<VmHandle> { return defaultDriver.start(spec); }
export function adoptVm(stateDir: string, options?: AdoptOptions): Promise<VmHandle> { return defaultDriver.adopt(stateDir, options); }
