import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, openSync, readSync, fstatSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { HangarError } from '../shared/errors.js';
import { CtlClient } from './ctl.js';
import { QmpClient } from './qmp.js';
import { field, RecordDecoder, type GuestRecord } from './records.js';
import { FILES, isSameProcess, socketPath, writeJsonAtomic, type VmMeta } from './state.js';
import { FileTail } from './tail.js';
import { removeSnapshotTemps } from './scratch.js';
import { growVolume, holdVolume, resumeIfPaused } from './volume-ops.js';
import type {
  Accel, ExecResult, ForwardedPort, LogStream, VmExit, VmHandle, VmHandleEvents, VmStatus, VolumeHold,
} from './types.js';

const STREAMS: Record<string, LogStream> = { o: 'stdout', e: 'stderr', i: 'init' };
const CONSOLE_KEEP = 200;

interface ExitRecord { code: number; sig: number; oom: boolean; err: string }

function parseExitPayload(s: string): ExitRecord | undefined {
  const m = /^(\d+) (\d+) ([01]) (\S+)$/.exec(s.trim());
  return m ? { code: Number(m[1]), sig: Number(m[2]), oom: m[3] === '1', err: m[4]! } : undefined;
}

/** The exit record is the last record of the log file; read only its tail. */
function scanExitRecord(path: string): ExitRecord | undefined {
  let fd: number;
  try { fd = openSync(path, 'r'); } catch { return undefined; }
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, 4096);
    const b = Buffer.alloc(len);
    readSync(fd, b, 0, len, size - len);
    const text = b.toString('latin1');
    const at = text.lastIndexOf('\nx ');
    const start = at >= 0 ? at + 1 : text.startsWith('x ') ? 0 : -1;
    if (start < 0) return undefined;
    const recs = new RecordDecoder().push(b.subarray(start));
    const x = recs.find((r) => r.key === 'x');
    return x ? parseExitPayload(x.value.toString('utf8')) : undefined;
  } finally {
    closeSync(fd);
  }
}

export function signalNumber(sig: string | number): number {
  if (typeof sig === 'number') {
    if (!Number.isInteger(sig) || sig < 1 || sig > 64) throw new HangarError('BAD_REQUEST', `invalid signal ${sig}; use a number from 1 to 64 or a name like SIGTERM`);
    return sig;
  }
  const name = sig.toUpperCase().startsWith('SIG') ? sig.toUpperCase() : `SIG${sig.toUpperCase()}`;
  const n = (osConstants.signals as Record<string, number>)[name];
  if (!n) throw new HangarError('BAD_REQUEST', `unknown signal ${sig}; use a name like SIGTERM or SIGINT`);
  return n;
}

export interface HandleOptions {
  /** fresh boots only: give up on a guest that never starts the app */
  bootTimeoutMs?: number;
  timings?: { requestedAt: number; spawnedAt: number; readyAt: number };
  child?: ChildProcess;
  qmp?: QmpClient;
  logOffset?: number;
}

/** A running (or finished) qemu microVM, whether started or adopted by this process. */
export class QemuVmHandle extends EventEmitter<VmHandleEvents> implements VmHandle {
  readonly id: string;
  readonly pid: number;
  readonly ports: ForwardedPort[];
  readonly accel: Accel;
  readonly timings: { requestedAt: number; spawnedAt: number; readyAt: number };
  private ctl: CtlClient;
  private qmp: QmpClient | null;
  private logTail: FileTail;
  private conTail: FileTail;
  private logDec = new RecordDecoder();
  private logBase: number;
  private conBuf = '';
  private consoleLines: string[] = [];
  private lastInitMsg = '';
  private exitRec?: ExitRecord;
  private consoleExit?: ExitRecord;
  private exitInfo?: VmExit;
  private exitWaiters: ((e: VmExit) => void)[] = [];
  private started?: { appPid: number };
  private startWaiters: { resolve: (v: { appPid: number }) => void; reject: (e: Error) => void }[] = [];
  private killRequested = false;
  private bootTimedOut = 0;
  private bootTimer: NodeJS.Timeout | null = null;
  private poll: NodeJS.Timeout | null = null;
  private detached = false;
  private following = false;
  private onChildExit = () => this.onQemuGone();

  constructor(private meta: VmMeta, readonly stateDir: string, opts: HandleOptions = {}) {
    super();
    this.id = meta.id;
    this.pid = meta.pid;
    this.ports = meta.ports;
    this.accel = meta.accel;
    this.timings = opts.timings ?? { requestedAt: 0, spawnedAt: 0, readyAt: 0 };
    this.qmp = opts.qmp ?? null;
    this.logBase = opts.logOffset ?? 0;
    this.logTail = new FileTail(join(stateDir, FILES.logs), this.logBase, (b) => this.onLogData(b));
    this.conTail = new FileTail(join(stateDir, FILES.console), 0, (b) => this.onConsoleData(b));
    this.ctl = new CtlClient(socketPath(stateDir, FILES.ctl), () => this.alive());
    this.ctl.on('event', (m) => this.onGuestEvent(m));
    this.ctl.on('connect', () => {
      // After adoption the "started" event is long gone: ask instead.
      this.ctl.request('status', [], 600_000).then((m) => {
        const pid = Number(field(m, 'pid') ?? 0);
        if (field(m, 'state') === 'running' && pid > 0) this.markStarted(pid);
      }, () => {});
    });
    opts.child?.once('exit', this.onChildExit);
    if (!opts.child && this.qmp) void resumeIfPaused(this.qmp).catch(() => {});
    this.qmp?.on('close', () => { if (!this.alive()) this.onQemuGone(); });
    // The files are followed from the first 'log' or 'console' listener on,
    // so a listener attached at any time sees every line from the offset (an
    // exit reads them anyway). Following from construction lost the early
    // lines of handles that reconcileVms adopted while it still awaited.
    const follow = () => {
      if (this.following || this.detached || this.exitInfo) return;
      this.following = true;
      this.logTail.start();
      this.conTail.start();
    };
    (this as unknown as EventEmitter).on('newListener', (event: string) => { if (event === 'log' || event === 'console') setImmediate(follow); });
    setImmediate(() => {
      if (this.detached) return;
      if (this.listenerCount('log') || this.listenerCount('console')) follow();
      this.ctl.start();
      this.poll = setInterval(() => { if (!this.alive()) this.onQemuGone(); }, 500);
      const bootMs = opts.bootTimeoutMs;
      if (bootMs && !this.started) {
        this.bootTimer = setTimeout(() => {
          if (this.started || this.exitInfo) return;
          this.bootTimedOut = bootMs;
          void this.kill();
        }, bootMs);
      }
      if (!this.alive()) this.onQemuGone();
    });
    this.childRef = opts.child;
  }
  private childRef?: ChildProcess;

  private alive(): boolean {
    return !this.exitInfo && isSameProcess(this.meta.pid, this.meta.pidStartTime);
  }

  private onLogData(chunk: Buffer): void {
    for (const r of this.logDec.push(chunk)) this.onLogRecord(r);
  }

  private onLogRecord(r: GuestRecord): void {
    if (r.key === 'x') { this.exitRec = parseExitPayload(r.value.toString('utf8')) ?? this.exitRec; return; }
    const stream = STREAMS[r.key];
    if (!stream) return;
    const line = r.value.toString('utf8');
    if (stream === 'init') this.lastInitMsg = line;
    this.emit('log', { stream, line, ts: Date.now(), offset: this.logBase + (r.end ?? 0) });
  }

  private onConsoleData(chunk: Buffer): void {
    this.conBuf += chunk.toString('utf8');
    let nl: number;
    while ((nl = this.conBuf.indexOf('\n')) >= 0) {
      const line = this.conBuf.slice(0, nl).replace(/\r$/, '');
      this.conBuf = this.conBuf.slice(nl + 1);
      const m = /^hangar-exit code=(\d+) signal=(\d+) oom=([01]) error=(\S+)/.exec(line);
      if (m) this.consoleExit = { code: Number(m[1]), sig: Number(m[2]), oom: m[3] === '1', err: m[4]! };
      this.consoleLines.push(line);
      if (this.consoleLines.length > CONSOLE_KEEP) this.consoleLines.shift();
      this.emit('console', { line, ts: Date.now() });
    }
  }

  private onGuestEvent(m: GuestRecord[]): void {
    const ev = field(m, 'ev');
    if (ev === 'started') this.markStarted(Number(field(m, 'pid') ?? 0));
    if (ev === 'exit' && !this.exitRec) {
      this.exitRec = { code: Number(field(m, 'code')), sig: Number(field(m, 'signal')), oom: field(m, 'oom') === '1', err: field(m, 'error') ?? '-' };
    }
  }

  private markStarted(appPid: number): void {
    if (this.started) return;
    this.started = { appPid };
    if (this.bootTimer) clearTimeout(this.bootTimer);
    for (const w of this.startWaiters.splice(0)) w.resolve(this.started);
    this.emit('started', this.started);
  }

  private stderrText(): string {
    try { return readFileSync(join(this.stateDir, FILES.stderr), 'utf8').trim().slice(-2000); } catch { return ''; }
  }

  private computeExit(): VmExit {
    const rec = this.exitRec ?? scanExitRecord(join(this.stateDir, FILES.logs)) ?? this.consoleExit;
    const exitedAt = Date.now();
    if (rec) {
      if (rec.err !== '-') {
        return { exitCode: rec.code, signal: null, oomKilled: false, reason: 'init_error', error: rec.err,
          message: this.lastInitMsg || `the guest init failed (${rec.err}, exit code ${rec.code})`, exitedAt };
      }
      return { exitCode: rec.code, signal: rec.sig || null, oomKilled: rec.oom, reason: 'exited',
        message: rec.oom ? `the app was OOM-killed (exit code ${rec.code})` : rec.sig ? `the app was killed by signal ${rec.sig}` : `the app exited with code ${rec.code}`, exitedAt };
    }
    const tail = this.consoleLines.slice(-8).join('\n');
    if (this.bootTimedOut) {
      return { exitCode: null, signal: null, oomKilled: false, reason: 'crashed',
        message: `the guest did not start the app within ${Math.round(this.bootTimedOut / 1000)} s and was killed${tail ? `; console:\n${tail}` : ''}`, exitedAt };
    }
    if (this.killRequested) return { exitCode: 137, signal: 9, oomKilled: false, reason: 'killed', message: 'the VM was killed by the host', exitedAt };
    const err = this.stderrText();
    // A panic's first line says why; the tail is usually just its stack trace.
    const panic = this.consoleLines.find((l) => /Kernel panic|not syncing/.test(l))?.replace(/^\[\s*[\d.]+\]\s*/, '');
    return { exitCode: null, signal: null, oomKilled: false, reason: 'crashed',
      message: `the VM stopped without an exit report${panic ? `: ${panic}` : ''}${err ? `; qemu: ${err}` : ''}${tail ? `; console:\n${tail}` : ''}`, exitedAt };
  }

  private onQemuGone(): void {
    if (this.exitInfo || this.detached) return;
    if (isSameProcess(this.meta.pid, this.meta.pidStartTime)) return;
    if (this.poll) clearInterval(this.poll);
    this.logTail.drain();
    this.conTail.drain();
    if (this.conBuf) this.onConsoleData(Buffer.from('\n'));
    const exit = this.computeExit();
    this.exitInfo = exit;
    try { writeJsonAtomic(join(this.stateDir, FILES.exit), exit); } catch { /* state dir removed */ }
    removeSnapshotTemps(this.stateDir);
    this.release(new HangarError('VM_STOPPED', `the VM has stopped: ${exit.message}`, { status: 409 }));
    for (const w of this.startWaiters.splice(0)) w.reject(new HangarError('VM_STOPPED', `the VM stopped before the app started: ${exit.message}`, { status: 409 }));
    this.emit('exit', exit);
    for (const w of this.exitWaiters.splice(0)) w(exit);
  }

  private release(reason: Error): void {
    if (this.bootTimer) clearTimeout(this.bootTimer);
    if (this.poll) clearInterval(this.poll);
    this.poll = null;
    this.logTail.stop();
    this.conTail.stop();
    this.ctl.close(reason);
    this.qmp?.close();
    this.childRef?.off('exit', this.onChildExit);
  }

  consoleTail(): string[] { return [...this.consoleLines]; }

  waitStarted(): Promise<{ appPid: number }> {
    if (this.started) return Promise.resolve(this.started);
    if (this.exitInfo) return Promise.reject(new HangarError('VM_STOPPED', `the VM stopped before the app started: ${this.exitInfo.message}`, { status: 409 }));
    return new Promise((resolve, reject) => this.startWaiters.push({ resolve, reject }));
  }

  waitExit(): Promise<VmExit> {
    if (this.exitInfo) return Promise.resolve(this.exitInfo);
    return new Promise((resolve) => this.exitWaiters.push(resolve));
  }

  async exec(cmd: string[], options: { timeoutMs?: number } = {}): Promise<ExecResult> {
    if (!cmd.length || cmd.some((c) => c.includes('\0'))) throw new HangarError('BAD_REQUEST', 'exec needs a non-empty command without NUL bytes');
    const timeoutMs = options.timeoutMs ?? 30_000;
    const m = await this.ctl.request('exec', [...cmd.map((c) => ['arg', c] as [string, string]), ['timeout', String(timeoutMs)]], timeoutMs + 10_000);
    if (field(m, 'ok') !== '1') throw new HangarError('EXEC_FAILED', `exec failed in the guest: ${field(m, 'error') ?? 'unknown error'}`, { status: 409 });
    const sig = Number(field(m, 'signal') ?? 0);
    return {
      exitCode: Number(field(m, 'code')),
      signal: sig || null,
      timedOut: field(m, 'timed_out') === '1',
      stdout: field(m, 'stdout') ?? '',
      stderr: field(m, 'stderr') ?? '',
    };
  }

  async signal(sig: string | number): Promise<void> {
    const n = signalNumber(sig);
    if (this.exitInfo) throw new HangarError('VM_STOPPED', 'the VM is not running', { status: 409 });
    const m = await this.ctl.request('signal', [['sig', String(n)]], 10_000);
    if (field(m, 'ok') !== '1') throw new HangarError('CONFLICT', `could not signal the app: ${field(m, 'error') ?? 'unknown error'}`);
  }

  async status(): Promise<VmStatus> {
    if (this.exitInfo || !this.alive()) return { state: 'stopped', pid: null };
    try {
      const m = await this.ctl.request('status', [], this.started ? 3000 : 500);
      const running = field(m, 'state') === 'running';
      return { state: running ? 'running' : 'exiting', pid: this.pid, appPid: Number(field(m, 'pid')) || undefined, uptimeMs: Number(field(m, 'uptime_ms')) };
    } catch {
      if (this.exitInfo) return { state: 'stopped', pid: null };
      return { state: this.started ? 'running' : 'booting', pid: this.pid };
    }
  }

  growVolume(hostPath: string, bytes: number): Promise<{ fsBytes: number }> {
    if (this.exitInfo) return Promise.reject(new HangarError('VM_STOPPED', 'the VM is not running', { status: 409 }));
    return growVolume({ ctl: this.ctl, qmp: this.qmp }, hostPath, bytes);
  }

  holdVolume(hostPath: string, holdMs?: number): Promise<VolumeHold> {
    if (this.exitInfo) return Promise.reject(new HangarError('VM_STOPPED', 'the VM is not running', { status: 409 }));
    return holdVolume({ ctl: this.ctl, qmp: this.qmp }, hostPath, holdMs);
  }

  async kill(): Promise<VmExit> {
    if (this.exitInfo) return this.exitInfo;
    this.killRequested = true;
    if (isSameProcess(this.meta.pid, this.meta.pidStartTime)) {
      try { process.kill(-this.meta.pid, 'SIGKILL'); } catch { try { process.kill(this.meta.pid, 'SIGKILL'); } catch { /* gone */ } }
    }
    const wait = this.waitExit();
    // An adopted qemu is not our child: no exit event, so poll quickly.
    const t = setInterval(() => this.onQemuGone(), 20);
    try { return await wait; } finally { clearInterval(t); }
  }

  async dispose(): Promise<void> {
    if (this.detached) return;
    if (!this.exitInfo) await this.kill();
    this.release(new HangarError('VM_STOPPED', 'the VM handle was disposed', { status: 409 }));
  }

  detach(): void {
    if (this.exitInfo || this.detached) return;
    this.detached = true;
    this.release(new HangarError('VM_DETACHED', 'the VM handle was detached from this process; adopt it again', { status: 409 }));
    for (const w of this.startWaiters.splice(0)) w.reject(new HangarError('VM_DETACHED', 'detached', { status: 409 }));
  }
}

export { QmpClient };
