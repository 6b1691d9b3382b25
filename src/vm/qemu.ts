import { spawn } from 'node:child_process';
import { appendFileSync, chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { HangarError } from '../shared/errors.js';
import { run } from '../shared/process.js';
import { hostTscKhz, resolveAccel } from './accel.js';
import { findGuestArtifacts, qemuBinary, type GuestArtifacts } from './artifacts.js';
import { QemuVmHandle } from './handle.js';
import { removeSnapshotTemps, scratchTemplate } from './scratch.js';
import { QmpClient } from './qmp.js';
import { compileRunConfig, configCpio } from './runconfig.js';
import { FILES, isSameProcess, procStartTime, readMeta, socketPath, writeJsonAtomic, type VmMeta } from './state.js';
import type { Accel, AdoptOptions, ForwardedPort, VmDriver, VmHandle, VmSpec } from './types.js';

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** qemu -name prefix: how reconcileVms recognises Hangar's qemu processes. */
export const QEMU_NAME_PREFIX = 'hangar-';

const qarg = (s: string) => s.replace(/,/g, ',,');

export interface QemuArgsInput {
  spec: VmSpec;
  artifacts: GuestArtifacts;
  accel: Accel;
  /** empty ext4 image used copy-on-write as the writable layer */
  scratchTemplate?: string;
}

/** The qemu argv (paths relative to the state dir, qemu's cwd). */
export function buildQemuArgs({ spec, artifacts, accel, scratchTemplate }: QemuArgsInput): string[] {
  // Boot-time trims: no LSMs or audit (one app per VM, no policies), no crypto
  // self-tests, one UART. Under TCG also: the TSC rate (a microvm has no PIT or
  // HPET to calibrate against) and no speculation mitigations (an emulated CPU
  // does not speculate, so they are pure cost).
  const cmdline = ['console=ttyS0', 'quiet', 'panic=-1', 'reboot=t', 'audit=0', 'security=none', 'cryptomgr.notests',
    '8250.nr_uarts=1', 'no_timer_check', 'random.trust_cpu=on'];
  if (accel === 'tcg') cmdline.push(`tsc_early_khz=${hostTscKhz()}`, 'tsc=reliable', 'mitigations=off');
  cmdline.push(...(spec.kernelArgs ?? []));
  const a = [
    '-name', `${QEMU_NAME_PREFIX}${spec.id}`,
    '-M', 'microvm,x-option-roms=off,isa-serial=on',
    '-accel', accel, '-cpu', accel === 'kvm' ? 'host' : 'max',
    '-m', String(spec.memoryMb ?? 256), '-smp', String(spec.cpus ?? 1),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-kernel', artifacts.vmlinux, '-initrd', FILES.initrd, '-append', cmdline.join(' '),
    '-chardev', `file,id=con,path=${FILES.console}`, '-serial', 'chardev:con',
    '-qmp', `unix:${FILES.qmp},server=on,wait=off`,
    '-drive', `id=root,file=${qarg(resolve(spec.rootfs))},format=raw,if=none,readonly=on`,
    '-device', 'virtio-blk-device,drive=root,serial=root',
  ];
  if (scratchTemplate) {
    a.push('-drive', `id=scratch,file=${qarg(resolve(scratchTemplate))},format=raw,if=none,snapshot=on`, '-device', 'virtio-blk-device,drive=scratch,serial=scratch');
  }
  (spec.volumes ?? []).forEach((v, i) => {
    a.push('-drive', `id=vol${i},file=${qarg(resolve(v.hostPath))},format=raw,if=none`, '-device', `virtio-blk-device,drive=vol${i},serial=vol${i}`);
  });
  a.push(
    '-device', 'virtio-serial-device,max_ports=4',
    '-chardev', `file,id=log,path=${FILES.logs}`, '-device', 'virtserialport,chardev=log,name=hangar.log',
    '-chardev', `socket,id=ctl,path=${FILES.ctl},server=on,wait=off`, '-device', 'virtserialport,chardev=ctl,name=hangar.ctl',
  );
  const fwd = (spec.ports ?? []).map((p) => `,hostfwd=${p.protocol ?? 'tcp'}:127.0.0.1:0-:${p.guestPort}`).join('');
  a.push('-netdev', `user,id=n0${fwd}`, '-device', 'virtio-net-device,netdev=n0');
  return a;
}

/** Parse `info usernet`: host ports qemu picked for hostfwd=...:0-:guest. */
export function parseUsernet(text: string): ForwardedPort[] {
  const out: ForwardedPort[] = [];
  const re = /(TCP|UDP)\[HOST_FORWARD\]\s+\d+\s+(\S+)\s+(\d+)\s+\S+\s+(\d+)/g;
  for (let m; (m = re.exec(text));) {
    out.push({ protocol: m[1] === 'UDP' ? 'udp' : 'tcp', hostAddress: m[2]!, hostPort: Number(m[3]), guestPort: Number(m[4]) });
  }
  return out;
}

/** initrd = base initramfs (copied in-kernel with copy_file_range) + config cpio. */
function writeInitrd(path: string, base: string, cfgCpio: Buffer): void {
  rmSync(path, { force: true });
  copyFileSync(base, path);
  chmodSync(path, 0o600);
  appendFileSync(path, cfgCpio);
}

function validateSpec(spec: VmSpec): void {
  if (!ID_RE.test(spec.id)) throw new HangarError('BAD_REQUEST', `invalid VM id ${JSON.stringify(spec.id)}: use letters, digits, - and _ (max 64)`);
  if (!isAbsolute(spec.stateDir)) throw new HangarError('BAD_REQUEST', 'stateDir must be an absolute path');
  if (!existsSync(spec.rootfs)) throw new HangarError('NOT_FOUND', `root filesystem image ${spec.rootfs} does not exist; convert the image first`);
  const cpus = spec.cpus ?? 1, mem = spec.memoryMb ?? 256;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 64) throw new HangarError('BAD_REQUEST', 'guest cpus must be an integer from 1 to 64');
  if (!Number.isInteger(mem) || mem < 64 || mem > 65536) throw new HangarError('BAD_REQUEST', 'guest memory_mb must be an integer from 64 to 65536');
  const scratch = spec.scratchMb ?? 2048;
  if (!Number.isInteger(scratch) || scratch < 64 || scratch > 1_048_576) throw new HangarError('BAD_REQUEST', 'scratchMb must be an integer from 64 to 1048576');
  if ((spec.volumes?.length ?? 0) > 8) throw new HangarError('BAD_REQUEST', 'at most 8 volumes per machine');
  for (const p of spec.ports ?? []) {
    if (!Number.isInteger(p.guestPort) || p.guestPort < 1 || p.guestPort > 65535) throw new HangarError('BAD_REQUEST', `invalid guest port ${p.guestPort}`);
  }
  for (const v of spec.volumes ?? []) {
    if (!existsSync(v.hostPath)) throw new HangarError('NOT_FOUND', `volume image ${v.hostPath} does not exist`);
  }
}

export class QemuDriver implements VmDriver {
  readonly name = 'qemu-microvm';

  async start(spec: VmSpec): Promise<VmHandle> {
    const requestedAt = Date.now();
    validateSpec(spec);
    const artifacts = findGuestArtifacts();
    const accel = await resolveAccel(artifacts);
    const dir = spec.stateDir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const prev = readMeta(dir);
    if (prev && isSameProcess(prev.pid, prev.pidStartTime)) {
      throw new HangarError('CONFLICT', `a VM is already running from ${dir} (qemu pid ${prev.pid}); stop it first`);
    }
    for (const f of [FILES.meta, FILES.exit, FILES.console, FILES.logs, FILES.ctl, FILES.qmp, FILES.stderr]) rmSync(join(dir, f), { force: true });

    const volumes = (spec.volumes ?? []).map((v, i) => ({ serial: `vol${i}`, guestPath: v.guestPath }));
    const config = compileRunConfig(spec.run, { root: 'root', scratch: 'scratch', volumes }, { hostname: spec.id.slice(0, 63).replace(/_/g, '-'), rootfsType: spec.rootfsType, orphanTimeoutMs: spec.orphanTimeoutMs ?? (Number(process.env.HANGAR_VM_ORPHAN_TIMEOUT_S) * 1000 || undefined) });
    // Base initramfs + config cpio, concatenated: no per-machine image build.
    writeInitrd(join(dir, FILES.initrd), artifacts.initramfs, configCpio(config));
    removeSnapshotTemps(dir);
    const template = await scratchTemplate(artifacts, dir, spec.scratchMb ?? 2048);

    const args = buildQemuArgs({ spec, artifacts, accel, scratchTemplate: template });
    const errFd = openSync(join(dir, FILES.stderr), 'w', 0o600);
    // Detached (own session, stdio on files): qemu must survive the daemon,
    // which re-adopts it from vm.json after a restart.
    const child = spawn(qemuBinary(), args, { cwd: dir, detached: true, stdio: ['ignore', errFd, errFd], env: { ...process.env, TMPDIR: dir } });
    closeSync(errFd);
    child.unref();
    const spawnedAt = Date.now();
    const pid = child.pid;
    const stderrText = () => { try { return readFileSync(join(dir, FILES.stderr), 'utf8').trim().slice(-4000); } catch { return ''; } };
    const startFailed = (why: string) => {
      if (pid) { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }
      rmSync(join(dir, FILES.initrd), { force: true });
      const err = stderrText();
      return new HangarError('VM_START_FAILED', `qemu did not start: ${why}${err ? `: ${err}` : ''}`, { status: 500, expose: true });
    };
    if (!pid) {
      await new Promise((r) => child.once('error', r));
      throw startFailed(`could not run ${qemuBinary()} (is qemu-system-x86 installed? run scripts/setup.sh)`);
    }
    const startTime = procStartTime(pid) ?? '';
    let exited = false;
    child.once('exit', () => { exited = true; });

    const timeoutMs = spec.startTimeoutMs ?? 15_000;
    let qmp: QmpClient;
    try {
      qmp = await Promise.race([
        QmpClient.connect(socketPath(dir, FILES.qmp), timeoutMs, () => !exited),
        new Promise<never>((_, rej) => child.once('exit', (code, sig) => rej(new Error(`qemu exited (${sig ?? `code ${code}`})`)))),
      ]);
    } catch (e) {
      await new Promise((r) => setTimeout(r, 50));
      throw startFailed(e instanceof Error ? e.message : String(e));
    }
    let ports: ForwardedPort[] = [];
    if (spec.ports?.length) {
      try {
        ports = parseUsernet(String(await qmp.execute('human-monitor-command', { 'command-line': 'info usernet' })));
      } catch (e) {
        qmp.close();
        throw startFailed(`could not read the forwarded ports: ${e instanceof Error ? e.message : e}`);
      }
    }
    // qemu has the initrd mapped (it mmaps the file, so it must not be
    // modified in place): unlinking removes the secrets it holds from the
    // host disk while qemu keeps its mapping.
    rmSync(join(dir, FILES.initrd), { force: true });
    const meta: VmMeta = { version: 1, driver: 'qemu', id: spec.id, pid, pidStartTime: startTime, accel, ports, startedAt: Date.now() };
    writeJsonAtomic(join(dir, FILES.meta), meta);
    return new QemuVmHandle(meta, dir, { child, qmp, bootTimeoutMs: spec.bootTimeoutMs ?? 300_000, timings: { requestedAt, spawnedAt, readyAt: meta.startedAt } });
  }

  async adopt(stateDir: string, options: AdoptOptions = {}): Promise<VmHandle> {
    const meta = readMeta(stateDir);
    if (!meta) throw new HangarError('NOT_FOUND', `no VM state in ${stateDir} (vm.json missing or unreadable)`);
    let qmp: QmpClient | undefined;
    if (isSameProcess(meta.pid, meta.pidStartTime)) {
      try {
        qmp = await QmpClient.connect(socketPath(stateDir, FILES.qmp), 3000, () => isSameProcess(meta.pid, meta.pidStartTime));
      } catch { /* exit detection falls back to polling the pid */ }
    }
    return new QemuVmHandle(meta, stateDir, { qmp, logOffset: options.logOffset });
  }
}

export interface ReconcileResult {
  /** VMs still running, now watched by this process */
  adopted: VmHandle[];
  /** VMs that had stopped while no daemon watched them (their exit is known) */
  stopped: VmHandle[];
  /** qemu pids this call killed (not wanted, or not Hangar-tracked) */
  killed: number[];
}

/**
 * After a daemon restart: every VM state dir under `root` is either adopted
 * (keep returns true) or killed, and any other Hangar qemu whose cwd is under
 * `root` is killed too, so no qemu outlives its bookkeeping.
 */
export async function reconcileVms(root: string, keep: (id: string, stateDir: string) => boolean, driver = new QemuDriver()): Promise<ReconcileResult> {
  const result: ReconcileResult = { adopted: [], stopped: [], killed: [] };
  const known = new Set<number>();
  let entries: string[] = [];
  try { entries = readdirSync(root); } catch { /* nothing yet */ }
  for (const name of entries) {
    const dir = join(root, name);
    const meta = readMeta(dir);
    if (!meta) continue;
    const alive = isSameProcess(meta.pid, meta.pidStartTime);
    if (alive && !keep(meta.id, dir)) {
      await killPid(meta.pid);
      result.killed.push(meta.pid);
      continue;
    }
    if (alive) known.add(meta.pid);
    const h = await driver.adopt(dir);
    (alive ? result.adopted : result.stopped).push(h);
  }
  const absRoot = resolve(root) + '/';
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const pid = Number(p);
    if (known.has(pid)) continue;
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      const i = argv.indexOf('-name');
      if (i < 0 || !argv[i + 1]?.startsWith(QEMU_NAME_PREFIX)) continue;
      const cwd = readlinkSync(`/proc/${p}/cwd`);
      if (!(cwd + '/').startsWith(absRoot)) continue;
      await killPid(pid);
      result.killed.push(pid);
    } catch { /* raced with exit */ }
  }
  return result;
}

async function killPid(pid: number): Promise<void> {
  const start = procStartTime(pid);
  try { process.kill(-pid, 'SIGKILL'); } catch { try { process.kill(pid, 'SIGKILL'); } catch { return; } }
  for (let i = 0; i < 200 && start && isSameProcess(pid, start); i++) await new Promise((r) => setTimeout(r, 10));
}
