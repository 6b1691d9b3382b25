import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { HangarError } from '../shared/errors.js';
import type { CtlClient } from './ctl.js';
import type { QmpClient } from './qmp.js';
import { field, type GuestRecord } from './records.js';
import type { VolumeHold } from './types.js';

/**
 * Online volume operations on a running VM: the qemu half over QMP and the
 * guest half over the init's control channel (docs/guest-init.md, ops
 * `fs.resize`, `fs.freeze`, `fs.thaw`). A volume is named by its host image
 * path; qemu's drive id for it (`volN`) is also the disk serial the guest
 * knows it by (see buildQemuArgs).
 */
export interface VolumeOpsTarget {
  ctl: CtlClient;
  qmp: QmpClient | null;
}


export const DEFAULT_HOLD_MS = 120_000;

function needQmp(t: VolumeOpsTarget): QmpClient {
  if (!t.qmp) throw new HangarError('VM_NO_QMP', 'this VM has no QMP connection (it was adopted without one); restart the machine to change its disks', { status: 409 });
  return t.qmp;
}

function canonical(p: string): string {
  try { return realpathSync(p); } catch { return resolve(p); }
}

/** qemu's drive id (= guest disk serial) of the volume image at hostPath. */
export async function volumeDrive(qmp: QmpClient, hostPath: string): Promise<string> {
  const want = canonical(hostPath);
  const blocks = (await qmp.execute('query-block')) as { device?: string; inserted?: { file?: string } }[];
  for (const b of blocks ?? []) {
    if (!b.device?.startsWith('vol') || !b.inserted?.file) continue;
    if (canonical(b.inserted.file) === want) return b.device;
  }
  throw new HangarError('NOT_FOUND', `volume image ${hostPath} is not attached to this VM`, { status: 404 });
}

function guestError(op: string, m: GuestRecord[]): HangarError {
  return new HangarError('VOLUME_OP_FAILED', `${op} in the guest failed: ${field(m, 'error') ?? 'unknown error'}`, { status: 409 });
}

/**
 * Grow a mounted volume online: tell qemu the image's new size (the guest
 * sees a virtio config change), then have the init grow the ext4 with
 * EXT4_IOC_RESIZE_FS. The image file must already be `bytes` long.
 */
export async function growVolume(t: VolumeOpsTarget, hostPath: string, bytes: number): Promise<{ fsBytes: number }> {
  if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % 512) throw new HangarError('BAD_REQUEST', 'the new volume size must be a positive multiple of 512 bytes');
  const qmp = needQmp(t);
  const drive = await volumeDrive(qmp, hostPath);
  await qmp.execute('block_resize', { device: drive, size: bytes });
  const m = await t.ctl.request('fs.resize', [['serial', drive], ['bytes', String(bytes)]], 120_000);
  if (field(m, 'ok') !== '1') throw guestError('growing the filesystem', m);
  return { fsBytes: Number(field(m, 'size')) };
}

/**
 * Hold a volume still so its image can be copied while the app runs.
 * Normally the guest freezes the filesystem (FIFREEZE: dirty data written,
 * journal checkpointed, writers blocked), which leaves a clean image; the
 * guest thaws by itself after `holdMs` or as soon as the host disconnects.
 * A guest init without the op (an older one) or a volume not mounted right
 * now (boot, shutdown) gets the VM paused instead (QMP stop drains qemu's
 * I/O), which leaves a crash-consistent image.
 */
export async function holdVolume(t: VolumeOpsTarget, hostPath: string, holdMs = DEFAULT_HOLD_MS): Promise<VolumeHold> {
  const drive = await volumeDrive(needQmp(t), hostPath);
  let m: GuestRecord[];
  try {
    m = await t.ctl.request('fs.freeze', [['serial', drive], ['hold_ms', String(holdMs)]], holdMs + 30_000);
  } catch (err) {
    // Gave up waiting: the init undoes a freeze that completes later.
    void t.ctl.request('fs.thaw', [['serial', drive]], 10_000).catch(() => {});
    throw err;
  }
  if (field(m, 'ok') === '1') {
    return {
      mode: 'freeze',
      async release() {
        const r = await t.ctl.request('fs.thaw', [['serial', drive]], 30_000);
        if (field(r, 'ok') !== '1') throw guestError('thawing the filesystem', r);
        return { consistent: field(r, 'was_frozen') === '1' };
      },
    };
  }
  const reason = field(m, 'reason');
  const oldInit = !reason && field(m, 'error') === 'unknown op';
  if (!oldInit && reason !== 'not_mounted') throw guestError('freezing the filesystem', m);
  await needQmp(t).execute('stop');
  return {
    mode: 'pause',
    async release() {
      await needQmp(t).execute('cont');
      return { consistent: true };
    },
  };
}

/**
 * A daemon that died while holdVolume had the VM paused left it stopped;
 * Hangar pauses VMs for nothing else, so an adopted paused VM is resumed.
 */
export async function resumeIfPaused(qmp: QmpClient): Promise<boolean> {
  const st = (await qmp.execute('query-status')) as { status?: string } | undefined;
  if (st?.status !== 'paused') return false;
  await qmp.execute('cont');
  return true;
}
