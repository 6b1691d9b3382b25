import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findGuestArtifacts, qemuBinary, type GuestArtifacts } from './artifacts.js';
import { configCpio } from './runconfig.js';
import { encodeRecords } from './records.js';
import type { Accel } from './types.js';

let cached: Accel | undefined;

/**
 * KVM when a real probe boot works, TCG otherwise. /dev/kvm existing is not
 * enough (on some hosts guests hang under it), so the probe boots the real
 * kernel + init with a "probe" config and waits for its marker line. The
 * answer is cached in memory and in <guest dir>/accel.json. HANGAR_ACCEL=kvm|tcg
 * skips the probe.
 */
export async function resolveAccel(artifacts: GuestArtifacts = findGuestArtifacts()): Promise<Accel> {
  const forced = process.env.HANGAR_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return forced;
  if (cached) return cached;
  const cacheFile = join(artifacts.dir, 'accel.json');
  try {
    const c = JSON.parse(readFileSync(cacheFile, 'utf8')) as { accel: Accel; kernelVersion: string; qemu: string };
    if (c.kernelVersion === artifacts.kernelVersion && c.qemu === qemuBinary() && (c.accel === 'kvm' || c.accel === 'tcg')) {
      cached = c.accel;
      return cached;
    }
  } catch { /* probe */ }
  const accel = (await probeKvm(artifacts)) ? 'kvm' : 'tcg';
  cached = accel;
  try {
    writeFileSync(cacheFile, JSON.stringify({ accel, kernelVersion: artifacts.kernelVersion, qemu: qemuBinary(), probedAt: new Date().toISOString() }) + '\n');
  } catch { /* read-only guest dir: in-memory cache only */ }
  return accel;
}

export async function probeKvm(artifacts: GuestArtifacts, timeoutMs = 6000): Promise<boolean> {
  try { accessSync('/dev/kvm', constants.R_OK | constants.W_OK); } catch { return false; }
  const initrd = join(artifacts.dir, `probe-${process.pid}.cpio`);
  writeFileSync(initrd, Buffer.concat([readFileSync(artifacts.initramfs), configCpio(encodeRecords([['probe', '1']]))]));
  try {
    return await new Promise<boolean>((resolve) => {
      const child = spawn(qemuBinary(), [
        '-M', 'microvm,x-option-roms=off,isa-serial=on', '-accel', 'kvm', '-cpu', 'host', '-m', '128', '-smp', '1',
        '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-serial', 'stdio',
        '-kernel', artifacts.vmlinux, '-initrd', initrd, '-append', 'console=ttyS0 quiet panic=-1 reboot=t',
      ], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const done = (ok: boolean) => { clearTimeout(timer); child.kill('SIGKILL'); resolve(ok); };
      const timer = setTimeout(() => done(false), timeoutMs);
      child.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('HANGAR_PROBE_OK')) done(true); });
      child.on('error', () => done(false));
      child.on('exit', () => done(out.includes('HANGAR_PROBE_OK')));
    });
  } finally {
    rmSync(initrd, { force: true });
  }
}

/** Host TSC rate in kHz: under TCG the guest sees the host's TSC, and the
 * guest kernel cannot calibrate it on a microvm (no PIT, no HPET). */
export function hostTscKhz(): number {
  try {
    const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return Math.round(Number(m[1]) * 1000);
  } catch { /* default */ }
  return 2_000_000;
}
