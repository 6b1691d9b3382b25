import { closeSync, existsSync, openSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { HangarError } from '../shared/errors.js';
import { run } from '../shared/process.js';
import type { GuestArtifacts } from './artifacts.js';

/**
 * The writable layer is a copy-on-write view of an empty ext4 template
 * (qemu `snapshot=on`): nothing to format or copy per boot, and the writes
 * go to a temporary qcow2 that qemu creates in $TMPDIR (the state dir) and
 * that disappears with the VM. The template is made once per size.
 */
export async function scratchTemplate(artifacts: GuestArtifacts, stateDir: string, sizeMb: number): Promise<string> {
  for (const dir of [artifacts.dir, stateDir]) {
    const path = join(dir, `scratch-${sizeMb}m.ext4`);
    if (existsSync(path)) return path;
    const tmp = `${path}.${process.pid}.tmp`;
    try {
      closeSync(openSync(tmp, 'w', 0o644));
      // Sparse file + no journal: an ephemeral layer needs neither preallocation nor crash safety.
      await run('truncate', ['-s', `${sizeMb}M`, tmp]);
      await run('mkfs.ext4', ['-q', '-F', '-m', '0', '-O', '^has_journal', '-E', 'lazy_itable_init=0,nodiscard', tmp]);
      renameSync(tmp, path);
      return path;
    } catch {
      rmSync(tmp, { force: true });
    }
  }
  throw new HangarError('VM_START_FAILED', `could not create the scratch template in ${artifacts.dir} or ${stateDir}; is mkfs.ext4 (e2fsprogs) installed?`, { status: 500 });
}

/** Leftovers of qemu's snapshot=on temp files (vl.XXXXXX) after a kill. */
export function removeSnapshotTemps(stateDir: string): void {
  try {
    for (const f of readdirSync(stateDir)) if (/^vl\.[A-Za-z0-9]{6}$/.test(f)) rmSync(join(stateDir, f), { force: true });
  } catch { /* gone */ }
}

