import { EventEmitter } from 'node:events';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { HangarError, conflict, notFound } from '../shared/errors.js';
import type { LogStore } from '../logs/index.js';
import type { Logger } from '../shared/log.js';
import { durationToMs, type MachineConfig } from './config.js';
import { MachineRecords, type MachineEvent, type MachineRecord, type MachineState } from './records.js';
import type { AcquiredImage, BootSpec, GuestExit, GuestMount, GuestRunner, ImageProvider, RunningGuest, ExecResult } from './runtime.js';

export interface MachineManagerOptions {
  records: MachineRecords;
  logs: LogStore;
  images: ImageProvider;
  guests: GuestRunner;
  dataDir: string;
  log: Logger;
  /** Secrets of an app, injected as env at boot (secrets component). */
  secretsFor?(app: string): Record<string, string>;
  /** Attach volumes named in config.mounts (volumes component). */
  attachMounts?(app: string, machineId: string, config: MachineConfig): GuestMount[];
  detachMounts?(machineId: string): void;
}

interface Active {
  guest: RunningGuest;
  release(): void;
  requestedStop: boolean;
  /** Settles once the exit was fully handled (events, leases, policy). */
  handled: Promise<void>;
}

const DEFAULT_STOP_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_RETRIES = 10;
const TERMINAL: MachineState[] = ['destroyed'];
/** The `changes` event for any machine's state (per-machine events use the machine id, which is hex: no clash). */
const STATE_CHANGED = 'state-changed';

/**
 * Machine lifecycle: create, start, stop, restart, update, destroy, the
 * restart policy, events and waiting for states. Operations on one machine
 * are serialised; different machines proceed in parallel.
 */
export class MachineManager {
  private readonly active = new Map<string, Active>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly changes = new EventEmitter();
  private closed = false;

  constructor(private readonly o: MachineManagerOptions) {
    this.changes.setMaxListeners(0);
  }

  // --- queries ---------------------------------------------------------------

  list(app: string, includeDestroyed = false): MachineRecord[] {
    return this.o.records.list(app).filter((m) => includeDestroyed || m.state !== 'destroyed');
  }

  get(app: string, id: string): MachineRecord {
    const m = this.o.records.get(id) ?? this.o.records.findByName(app, id);
    if (!m || m.app !== app) throw notFound(`machine ${id} not found in app ${app}; list them with \`hangar machine list -a ${app}\``);
    return m;
  }

  events(app: string, id: string): MachineEvent[] {
    return this.o.records.events(this.get(app, id).id);
  }

  // --- lifecycle -------------------------------------------------------------

  async create(app: string, input: { name?: string; config: MachineConfig; skip_launch?: boolean }): Promise<MachineRecord> {
    if (input.name && this.o.records.findByName(app, input.name)) {
      throw conflict(`a machine named ${input.name} already exists in app ${app}`);
    }
    const m = this.o.records.insert(app, input.name, input.config);
    this.o.records.addEvent(m.id, { type: 'launch', status: 'created', source: 'user' });
    if (!input.skip_launch) await this.start(app, m.id);
    return this.o.records.get(m.id)!;
  }

  /** Starts the machine; resolves once it is booting (state starting). */
  start(app: string, id: string): Promise<MachineRecord> {
    const m = this.get(app, id);
    return this.serial(m.id, async () => {
      const cur = this.o.records.get(m.id)!;
      if (cur.state === 'started' || cur.state === 'starting') return cur;
      if (!['created', 'stopped', 'failed'].includes(cur.state)) {
        throw new HangarError('CONFLICT', `machine ${m.id} is ${cur.state}; it can be started once it is stopped`, { status: 412 });
      }
      this.o.records.update(m.id, { restart_count: 0 });
      await this.boot(cur, 'user');
      return this.o.records.get(m.id)!;
    });
  }

  stop(app: string, id: string, opts: { signal?: string; timeoutMs?: number } = {}): Promise<MachineRecord> {
    const m = this.get(app, id);
    return this.serial(m.id, async () => {
      await this.stopNow(m.id, opts);
      return this.o.records.get(m.id)!;
    });
  }

  restart(app: string, id: string, opts: { signal?: string; timeoutMs?: number } = {}): Promise<MachineRecord> {
    const m = this.get(app, id);
    return this.serial(m.id, async () => {
      await this.stopNow(m.id, opts);
      this.o.records.addEvent(m.id, { type: 'restart', status: 'restarting', source: 'user' });
      await this.boot(this.o.records.get(m.id)!, 'user');
      return this.o.records.get(m.id)!;
    });
  }

  update(app: string, id: string, input: { config: MachineConfig; skip_launch?: boolean }): Promise<MachineRecord> {
    const m = this.get(app, id);
    return this.serial(m.id, async () => {
      const wasRunning = this.active.has(m.id);
      const launch = (wasRunning || m.state === 'created') && !input.skip_launch;
      // The new image is converted (and checked) while the machine still runs
      // the old one: a bad image leaves it running, and the gap between stop
      // and start no longer includes the conversion.
      const ready = launch ? await this.acquireImage(m.app, input.config.image) : undefined;
      try {
        if (wasRunning) await this.stopNow(m.id, {});
        this.o.records.update(m.id, { config: input.config, instance_id: m.instance_id });
        this.o.records.addEvent(m.id, { type: 'update', status: 'updated', source: 'user' });
        if (launch) await this.boot(this.o.records.get(m.id)!, 'user');
      } finally {
        ready?.release();
      }
      return this.o.records.get(m.id)!;
    });
  }

  async signal(app: string, id: string, signal: string): Promise<void> {
    const m = this.get(app, id);
    const a = this.active.get(m.id);
    if (!a) throw new HangarError('CONFLICT', `machine ${m.id} is ${m.state}; signals reach only started machines`, { status: 412 });
    await a.guest.signal(signal);
  }

  async exec(app: string, id: string, argv: string[], timeoutMs: number): Promise<ExecResult> {
    const m = this.get(app, id);
    const a = this.active.get(m.id);
    if (!a || m.state !== 'started') {
      throw new HangarError('CONFLICT', `machine ${m.id} is ${m.state}; start it before running commands in it`, { status: 412 });
    }
    return a.guest.exec(argv, timeoutMs);
  }

  /**
   * Grow a volume of a started machine online. False when the machine has
   * no running guest here that can do it (the volume grows at its next boot).
   */
  async growVolume(id: string, imagePath: string, bytes: number): Promise<boolean> {
    const a = this.active.get(id);
    if (!a?.guest.growVolume || this.o.records.get(id)?.state !== 'started') return false;
    await a.guest.growVolume(imagePath, bytes);
    return true;
  }

  /** Hold a running machine's volume still for a copy (volumes' quiesce hook). */
  async holdVolume(id: string, imagePath: string, holdMs: number): Promise<() => Promise<void>> {
    const a = this.active.get(id);
    if (!a?.guest.holdVolume) {
      // Between attach and the VM coming up, or on its way down: nothing to
      // hold yet, and the image may change under a copy.
      throw new HangarError('CONFLICT', `machine ${id} is ${this.o.records.get(id)?.state ?? 'gone'} and its VM is not up; try again in a moment`, { status: 409 });
    }
    return a.guest.holdVolume(imagePath, holdMs);
  }

  destroy(app: string, id: string, force: boolean): Promise<void> {
    const m = this.get(app, id);
    return this.serial(m.id, async () => {
      const cur = this.o.records.get(m.id)!;
      if (cur.state === 'destroyed') return;
      if (this.active.has(m.id) || cur.state === 'starting') {
        if (!force) {
          throw new HangarError('CONFLICT', `machine ${m.id} is ${cur.state}: stop it first, or destroy with --force to kill it`, { status: 412 });
        }
        await this.stopNow(m.id, { signal: 'SIGKILL', timeoutMs: 0 });
      }
      this.markDestroyed(m.id, 'user');
    });
  }

  /** Resolves when the machine reaches `state`; 408 after the timeout. */
  async wait(app: string, id: string, state: MachineState, timeoutMs: number): Promise<MachineRecord> {
    const m = this.get(app, id);
    return new Promise((resolve, reject) => {
      const check = () => {
        const cur = this.o.records.get(m.id);
        const now = cur?.state ?? 'destroyed';
        if (now === state) {
          done();
          resolve(cur ?? { ...m, state: 'destroyed' });
        } else if (state !== 'destroyed' && TERMINAL.includes(now)) {
          done();
          reject(new HangarError('CONFLICT', `machine ${m.id} was destroyed while waiting for ${state}`, { status: 412 }));
        }
      };
      const timer = setTimeout(() => {
        done();
        const cur = this.o.records.get(m.id);
        reject(new HangarError('TIMEOUT', `machine ${m.id} did not reach ${state} within ${timeoutMs / 1000}s (it is ${cur?.state ?? 'gone'})`, { status: 408 }));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.changes.off(m.id, check);
      };
      this.changes.on(m.id, check);
      check();
    });
  }

  // --- daemon start/stop -----------------------------------------------------

  /**
   * After a daemon restart: re-adopt guests that kept running, and mark the
   * ones that are gone as stopped with a reason.
   */
  async recover(): Promise<void> {
    for (const m of this.o.records.list()) {
      if (!['starting', 'started', 'stopping'].includes(m.state)) continue;
      let guest: RunningGuest | undefined;
      try {
        guest = await this.o.guests.adopt(m.id, this.stateDir(m.id), this.o.logs.cursor(m.id));
      } catch (err) {
        this.o.log.warn('could not re-adopt machine', { machine: m.id, err });
      }
      if (!guest) {
        this.setState(m.id, 'stopped', 'the VM was no longer running when the daemon restarted');
        this.o.records.addEvent(m.id, { type: 'exit', status: 'stopped', source: 'flyd', request: { exit_event: { exit_code: -1, reason: 'lost across daemon restart' } } });
        continue;
      }
      this.o.log.info('re-adopted running machine', { machine: m.id });
      // The rootfs lease is re-taken lazily: the image stays in the cache
      // because the VM holds the file open; nothing to release on exit.
      this.watch(m.id, guest, () => {});
      this.setState(m.id, 'started', null, guest.ports);
    }
  }

  /**
   * Daemon shutdown: leave guests running (they are re-adopted on the next
   * start) but stop listening to them.
   */
  close(): void {
    this.closed = true;
    for (const a of this.active.values()) a.guest.detach();
    this.active.clear();
  }

  // --- internals -------------------------------------------------------------

  private stateDir(id: string): string {
    return join(this.o.dataDir, 'machines', id);
  }

  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.locks.set(id, tail);
    void tail.then(() => {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    });
    return next;
  }

  private setState(id: string, state: MachineState, reason: string | null = null, ports?: Record<string, number>): void {
    const m = this.o.records.update(id, { state, reason, ...(ports ? { ports } : {}) });
    this.changes.emit(id);
    this.changes.emit(STATE_CHANGED, m.app, id);
  }

  /**
   * Calls `listener(app, id)` after every state change of any machine (the
   * proxy drops its cached machine list, so a machine stopped through the
   * API is not routed to). Returns the unsubscribe function.
   */
  onStateChange(listener: (app: string, id: string) => void): () => void {
    this.changes.on(STATE_CHANGED, listener);
    return () => this.changes.off(STATE_CHANGED, listener);
  }

  private async boot(m: MachineRecord, source: 'user' | 'flyd'): Promise<void> {
    this.setState(m.id, 'starting');
    const stateDir = this.stateDir(m.id);
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    let image;
    try {
      image = await this.acquireImage(m.app, m.config.image);
    } catch (err) {
      this.fail(m, (err as Error).message);
      throw err;
    }
    let mounts: GuestMount[] = [];
    let guest: RunningGuest;
    try {
      mounts = this.o.attachMounts?.(m.app, m.id, m.config) ?? [];
      const spec = this.bootSpec(m, stateDir, image.imagePath, image.config, mounts);
      guest = await this.o.guests.boot(spec);
    } catch (err) {
      image.release();
      this.o.detachMounts?.(m.id);
      this.fail(m, (err as Error).message);
      throw err;
    }
    this.o.records.update(m.id, { image_ref: image.ref });
    this.watch(m.id, guest, () => image.release());
    this.setState(m.id, 'started', null, guest.ports);
    this.o.records.addEvent(m.id, { type: 'start', status: 'started', source });
  }

  /** The image's root filesystem, leased; errors say which image and why. */
  private async acquireImage(app: string, image: string): Promise<AcquiredImage> {
    try {
      return await this.o.images.acquire(image, { app });
    } catch (err) {
      const reason = `cannot get image ${image}: ${(err as Error).message}`;
      if (err instanceof HangarError && err.status < 500) throw new HangarError(err.code, reason, { status: err.status });
      throw new HangarError('IMAGE_UNAVAILABLE', reason, { status: 502, expose: true, cause: err });
    }
  }

  private bootSpec(m: MachineRecord, stateDir: string, rootfsPath: string, image: BootSpec['image'], mounts: GuestMount[]): BootSpec {
    const c = m.config;
    const secrets = this.o.secretsFor?.(m.app) ?? {};
    // As on Fly, a file from `secret_name` takes the secret's value as the
    // base64 of the file's content.
    const files = (c.files ?? []).map((f) => {
      const content = f.raw_value ?? secrets[f.secret_name!];
      if (content === undefined) {
        throw new HangarError('BAD_REQUEST', `files: ${f.guest_path} names secret ${f.secret_name}, which app ${m.app} does not have; set it with \`hangar secrets set\``);
      }
      return { path: f.guest_path, content, mode: f.mode ?? 0o644 };
    });
    const ports = new Set<number>();
    for (const s of c.services ?? []) if (s.protocol !== 'udp') ports.add(s.internal_port);
    return {
      machineId: m.id,
      stateDir,
      hostname: m.id,
      rootfsPath,
      image,
      env: { FLY_APP_NAME: m.app, FLY_MACHINE_ID: m.id, FLY_REGION: 'local', FLY_IMAGE_REF: c.image, ...(c.env ?? {}) },
      secrets,
      init: { exec: c.init?.exec, entrypoint: c.init?.entrypoint, cmd: c.init?.cmd },
      cpus: c.guest?.cpus ?? 1,
      memoryMb: c.guest?.memory_mb ?? 256,
      ports: [...ports],
      files,
      mounts,
    };
  }

  private fail(m: MachineRecord, reason: string): void {
    this.setState(m.id, 'failed', reason);
    this.o.logs.append(m.app, m.id, 'system', `machine failed to start: ${reason}`);
    this.o.records.addEvent(m.id, { type: 'exit', status: 'failed', source: 'flyd', request: { reason } });
  }

  private watch(id: string, guest: RunningGuest, release: () => void): void {
    const rec = this.o.records.get(id)!;
    const entry: Active = { guest, release, requestedStop: false, handled: Promise.resolve() };
    this.active.set(id, entry);
    guest.onOutput((stream, line, cursor) => this.o.logs.append(rec.app, id, stream, line, new Date(), cursor));
    entry.handled = guest.exited.then((exit) => this.onExit(id, entry, exit));
  }

  private async onExit(id: string, entry: Active, exit: GuestExit): Promise<void> {
    if (this.active.get(id) !== entry) return;
    this.active.delete(id);
    entry.release();
    this.o.detachMounts?.(id);
    if (this.closed) return;
    const m = this.o.records.get(id);
    if (!m) return;
    this.o.logs.append(m.app, id, 'system', `machine exited: ${exit.reason}${exit.oomKilled ? " (out of memory)" : ""}`);
    this.o.records.addEvent(id, {
      type: 'exit',
      status: 'stopped',
      source: 'flyd',
      request: {
        exit_event: {
          exit_code: exit.exitCode,
          oom_killed: exit.oomKilled,
          requested_stop: entry.requestedStop,
          ...(exit.signal ? { signal: exit.signal } : {}),
          exited_at: new Date().toISOString(),
        },
      },
    });
    if (entry.requestedStop) return; // stopNow sets the state.
    if (m.config.auto_destroy) {
      this.markDestroyed(id, 'flyd');
      return;
    }
    const policy = m.config.restart?.policy ?? 'on-failure';
    const max = m.config.restart?.max_retries ?? DEFAULT_MAX_RETRIES;
    const again = policy === 'always' || (policy === 'on-failure' && exit.exitCode !== 0 && m.restart_count < max);
    if (!again) {
      this.setState(id, 'stopped', exit.reason);
      return;
    }
    this.o.records.update(id, { restart_count: m.restart_count + 1 });
    this.o.records.addEvent(id, { type: 'restart', status: 'restarting', source: 'flyd', request: { restart_count: m.restart_count + 1, policy } });
    try {
      await this.serial(id, async () => {
        const cur = this.o.records.get(id);
        if (!cur || cur.state === 'destroyed' || this.active.has(id)) return;
        await this.boot(cur, 'flyd');
      });
    } catch (err) {
      this.o.log.warn('restart by policy failed', { machine: id, err });
    }
  }

  private async stopNow(id: string, opts: { signal?: string; timeoutMs?: number }): Promise<void> {
    const entry = this.active.get(id);
    const m = this.o.records.get(id)!;
    if (!entry) {
      if (m.state !== 'created' && m.state !== 'failed') this.setState(id, 'stopped', m.reason);
      return;
    }
    entry.requestedStop = true;
    this.setState(id, 'stopping');
    const signal = opts.signal ?? m.config.stop_config?.signal ?? 'SIGTERM';
    const timeoutMs = opts.timeoutMs ?? durationToMs(m.config.stop_config?.timeout, DEFAULT_STOP_TIMEOUT_MS);
    this.o.records.addEvent(id, { type: 'stop', status: 'stopping', source: 'user', request: { signal, timeout_ms: timeoutMs } });
    if (signal === 'SIGKILL' || timeoutMs === 0) await entry.guest.kill();
    else {
      await entry.guest.signal(signal).catch(() => entry.guest.kill());
      const timedOut = await Promise.race([
        entry.guest.exited.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), timeoutMs).unref()),
      ]);
      if (timedOut) {
        this.o.logs.append(m.app, id, 'system', `app did not exit ${timeoutMs / 1000}s after ${signal}; killing the machine`);
        await entry.guest.kill();
      }
    }
    await entry.handled;
    this.setState(id, 'stopped', 'stopped by request');
  }

  private markDestroyed(id: string, source: 'user' | 'flyd'): void {
    this.o.records.addEvent(id, { type: 'destroy', status: 'destroyed', source });
    this.setState(id, 'destroyed');
    rmSync(this.stateDir(id), { recursive: true, force: true });
  }
}
