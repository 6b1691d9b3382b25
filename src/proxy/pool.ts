import { HangarError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { clock } from './clock.js';
import type { HealthTracker } from './health.js';
import type { BackendMachine, ProxyBackends, ProxyService } from './types.js';

export interface Lease {
  machine: BackendMachine;
  service: ProxyService;
  port: number;
  release(): void;
}

export interface PoolOptions {
  backends: ProxyBackends;
  health: HealthTracker;
  log: Logger;
  /** How long a request waits for a free slot when every machine is at its hard limit. */
  queueTimeoutMs: number;
  /** How long a request is held while a machine starts and its service comes up. */
  startTimeoutMs: number;
  /** After a failed start, the machine is not started again for this long. */
  startRetryMs: number;
  /** Autostop: a machine without traffic for this long is stopped. */
  idleStopMs: number;
}

interface Load {
  inflight: number;
  lastActive: number;
  /** Host port of the boot lastActive belongs to; a new boot resets the idle clock. */
  port: number | undefined;
}

class PoolLease implements Lease {
  private done = false;
  constructor(
    readonly machine: BackendMachine,
    readonly service: ProxyService,
    readonly port: number,
    private readonly load: Load,
    private readonly pool: Pool,
  ) {}

  release(): void {
    if (this.done) return;
    this.done = true;
    this.pool.released(this.load);
  }
}

const STARTABLE = new Set(['stopped', 'created', 'failed', 'suspended']);
/** While requests wait, re-read machine states this often (starts by others, API stops). */
const POLL_MS = 250;

const unavailable = (message: string, code = 'UNAVAILABLE') => new HangarError(code, message, { status: 503, expose: true });

/** The service that takes HTTP: an http handler or port 80/443 first, else the first TCP one. */
export function httpService(machines: BackendMachine[]): ProxyService | undefined {
  let fallback: ProxyService | undefined;
  for (const m of machines) {
    for (const s of m.services) {
      if (s.protocol === 'udp') continue;
      if (s.ports?.some((p) => p.handlers?.includes('http') || p.port === 80 || p.port === 443)) return s;
      fallback ??= s;
    }
  }
  return fallback;
}

const autostopOn = (s: ProxyService) => s.autostop === true || s.autostop === 'stop' || s.autostop === 'suspend';

/**
 * Per-machine load, machine choice (least outstanding requests within the
 * soft and hard concurrency limits), holding requests while machines start
 * or slots free up, and the autostart/autostop policy.
 */
export class Pool {
  private readonly loads = new Map<string, Load>();
  private readonly starting = new Map<string, Promise<void>>();
  private readonly startFailed = new Map<string, { at: number; reason: string }>();
  private readonly stopping = new Set<string>();
  private waiters: (() => void)[] = [];
  private readonly seenApps = new Set<string>();
  private sweeper: NodeJS.Timeout | undefined;
  /** Boots begun by the proxy (autostart), for tests and stats. */
  starts = 0;
  stops = 0;

  constructor(private readonly o: PoolOptions) {
    const every = Math.max(100, Math.min(o.idleStopMs / 4, 30_000));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.wake();
  }

  /** Wakes every held request so it looks again. */
  wake(): void {
    const w = this.waiters;
    if (w.length === 0) return;
    this.waiters = [];
    for (const f of w) f();
  }

  /**
   * A machine for one request (or websocket). Throws a 404/503 HangarError
   * whose message tells the client why there is none. Retries pass a short
   * maxWaitMs: they should not sit behind machines that are still booting.
   */
  /**
   * The hot path: a lease when a ready machine below its soft limit is
   * free right now, without promises or timers; else undefined (then
   * acquire() decides: queue, autostart, or an error).
   */
  tryAcquire(app: string): Lease | undefined {
    // Same choice as scan() makes for `best`, without allocating: this runs
    // for every request.
    const machines = this.o.backends.machinesFor(app);
    if (!machines) return undefined;
    const svc = this.serviceOf(machines);
    if (!svc) return undefined;
    const soft = svc.concurrency?.soft_limit ?? Infinity;
    const hard = svc.concurrency?.hard_limit ?? Infinity;
    let bestM: BackendMachine | undefined;
    let bestPort = 0;
    let bestLoad: Load | undefined;
    for (let i = 0; i < machines.length; i++) {
      const m = machines[i]!;
      if (m.state !== 'started' || this.starting.has(m.id) || this.stopping.has(m.id)) continue;
      const port = m.hostPort(svc.internal_port);
      if (port === undefined || this.o.health.status(m, svc, port) !== 'passing') continue;
      const load = this.load(m.id, port);
      if (load.inflight >= hard || load.inflight >= soft) continue;
      if (!bestLoad || load.inflight < bestLoad.inflight) {
        bestM = m;
        bestPort = port;
        bestLoad = load;
      }
    }
    if (!bestLoad) return undefined;
    this.seenApps.add(app);
    return this.lease(svc, { m: bestM!, port: bestPort, load: bestLoad });
  }

  /** httpService() per machine list (lists are cached by the backends, so this hits). */
  private readonly services = new WeakMap<BackendMachine[], ProxyService | null>();
  private serviceOf(machines: BackendMachine[]): ProxyService | undefined {
    let s = this.services.get(machines);
    if (s === undefined) {
      s = httpService(machines) ?? null;
      this.services.set(machines, s);
    }
    return s ?? undefined;
  }

  private lease(svc: ProxyService, pick: { m: BackendMachine; port: number; load: Load }): Lease {
    pick.load.inflight++;
    return new PoolLease(pick.m, svc, pick.port, pick.load, this);
  }

  /** A lease ended (PoolLease.release). */
  released(load: Load): void {
    load.inflight--;
    load.lastActive = clock.now;
    if (this.waiters.length) this.wake();
  }

  /** One look at an app's machines: the best choice and why there may be none. */
  private scan(app: string, exclude: Set<string> | undefined, now: number) {
    const machines = this.o.backends.machinesFor(app);
    if (!machines) throw new HangarError('NOT_FOUND', `there is no app named "${app}" on this Hangar; check the name with \`hangar apps list\``);
    this.seenApps.add(app);
    const svc = httpService(machines);
    if (!svc) {
      throw unavailable(
        machines.length === 0
          ? `app "${app}" has no machines; deploy it with \`hangar deploy\` or create one with \`hangar machine run\``
          : `app "${app}" has no machine with a TCP service; add [http_service] (internal_port) to its config and deploy again`,
        'NO_MACHINES',
      );
    }
    const soft = svc.concurrency?.soft_limit ?? Infinity;
    const hard = svc.concurrency?.hard_limit ?? Infinity;
    let best: { m: BackendMachine; port: number; load: Load } | undefined;
    let bestOverSoft: typeof best;
    let routable = 0;
    let booting: BackendMachine | undefined;
    let startable: BackendMachine | undefined;
    let unhealthy: BackendMachine | undefined;
    for (const m of machines) {
      if (exclude?.has(m.id) || this.stopping.has(m.id)) continue;
      if (this.starting.has(m.id)) {
        booting ??= m;
        continue;
      }
      if (m.state === 'started') {
        const port = m.hostPort(svc.internal_port);
        if (port === undefined) continue;
        const h = this.o.health.status(m, svc, port);
        if (h === 'pending') booting ??= m;
        if (h === 'failing') unhealthy ??= m;
        if (h !== 'passing') continue;
        routable++;
        const load = this.load(m.id, port);
        if (load.inflight >= hard) continue;
        if (load.inflight < soft) {
          if (!best || load.inflight < best.load.inflight) best = { m, port, load };
        } else if (!bestOverSoft || load.inflight < bestOverSoft.load.inflight) bestOverSoft = { m, port, load };
      } else if (m.state === 'starting') {
        booting ??= m;
      } else if (STARTABLE.has(m.state)) {
        const failed = this.startFailed.get(m.id);
        if (!failed || now - failed.at > this.o.startRetryMs) startable ??= m;
      }
    }
    return { machines, svc, hard, best, bestOverSoft, routable, booting, startable, unhealthy };
  }

  async acquire(app: string, exclude?: Set<string>, maxWaitMs = Infinity): Promise<Lease> {
    const t0 = Date.now();
    const startDeadline = t0 + Math.min(this.o.startTimeoutMs, maxWaitMs);
    const queueDeadline = t0 + Math.min(this.o.queueTimeoutMs, maxWaitMs);
    for (;;) {
      const scan = this.scan(app, exclude, Date.now());
      const { machines, svc, hard, best, bestOverSoft, routable, startable, unhealthy } = scan;
      let booting = scan.booting;
      const autostart = svc.autostart === true;
      // Every machine above its soft limit: bring up another one (as Fly does)
      // while still serving this request from the least loaded.
      if (!best && autostart && startable && !booting && routable > 0) this.kick(app, startable);
      const pick = best ?? bestOverSoft;
      if (pick) return this.lease(svc, pick);

      if (routable > 0) {
        if (Date.now() >= queueDeadline) {
          throw unavailable(
            `all ${routable} machine(s) of app "${app}" are at their hard_limit of ${hard} concurrent ${svc.concurrency?.type ?? 'connections'}; ` +
              `retry shortly, or raise the limit / add machines`,
            'OVER_CAPACITY',
          );
        }
        await this.wait(queueDeadline);
        continue;
      }

      if (!booting) {
        const failure = this.recentFailure(machines, t0);
        if (failure) throw unavailable(`machine ${failure.id} of app "${app}" failed to start: ${failure.reason}`, 'START_FAILED');
        if (unhealthy && (!autostart || !startable)) {
          throw unavailable(
            `machine ${unhealthy.id} of app "${app}" is started but failing its health checks, and no other machine can take the request; check \`hangar logs -a ${app}\``,
            'UNHEALTHY',
          );
        }
        if (!autostart) {
          throw unavailable(
            `app "${app}" has no started machine and autostart is off; start one with \`hangar machine start\` or set auto_start_machines = true`,
            'NO_STARTED_MACHINES',
          );
        }
        if (!startable) {
          const failed = this.recentFailure(machines, 0);
          throw unavailable(
            failed
              ? `machine ${failed.id} of app "${app}" failed to start: ${failed.reason}; retrying in a few seconds`
              : `app "${app}" has no machine that can be started (${machines.map((m) => `${m.id}: ${m.state}`).join(', ')})`,
            failed ? 'START_FAILED' : 'NO_STARTED_MACHINES',
          );
        }
        this.kick(app, startable);
        booting = startable;
      }
      if (Date.now() >= startDeadline) {
        throw unavailable(
          `machine ${booting.id} of app "${app}" did not answer on port ${svc.internal_port} within ${Math.round(this.o.startTimeoutMs / 1000)}s of starting; ` +
            `check its logs with \`hangar logs -a ${app}\``,
          'START_TIMEOUT',
        );
      }
      await this.wait(startDeadline);
    }
  }

  private recentFailure(machines: BackendMachine[], since: number): { id: string; reason: string } | undefined {
    for (const m of machines) {
      const f = this.startFailed.get(m.id);
      if (f && f.at >= since && Date.now() - f.at <= this.o.startRetryMs) return { id: m.id, reason: f.reason };
    }
    return undefined;
  }

  private load(id: string, port: number): Load {
    let l = this.loads.get(id);
    if (!l) {
      l = { inflight: 0, lastActive: Date.now(), port };
      this.loads.set(id, l);
    } else if (l.port !== port) {
      l.port = port;
      l.lastActive = Date.now();
    }
    return l;
  }

  /** Starts a machine once, however many requests want it. */
  private kick(app: string, m: BackendMachine): void {
    if (this.starting.has(m.id)) return;
    this.starts++;
    this.o.log.info('proxy: starting machine for a request', { app, machine: m.id });
    const p = this.o.backends.start(app, m.id).then(
      () => {
        this.startFailed.delete(m.id);
      },
      (err: unknown) => {
        const reason = err instanceof Error ? err.message : String(err);
        this.startFailed.set(m.id, { at: Date.now(), reason });
        this.o.log.warn('proxy: machine failed to start', { app, machine: m.id, reason });
      },
    );
    this.starting.set(m.id, p);
    void p.finally(() => {
      this.starting.delete(m.id);
      this.wake();
    });
  }

  private wait(deadline: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, Math.max(0, Math.min(deadline - Date.now(), POLL_MS)));
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.waiters.push(done);
    });
  }

  /** Autostop: stop machines idle for idleStopMs, never below min_machines_running. */
  sweep(): void {
    this.o.health.prune();
    const apps = this.o.backends.apps?.() ?? [...this.seenApps];
    const now = Date.now();
    for (const app of apps) {
      let machines: BackendMachine[] | undefined;
      try {
        machines = this.o.backends.machinesFor(app);
      } catch (err) {
        this.o.log.warn('proxy: cannot list machines for autostop', { app, err });
        continue;
      }
      if (!machines) continue;
      const svc = httpService(machines);
      if (!svc || !autostopOn(svc)) continue;
      const started = machines.filter((m) => m.state === 'started' && !this.stopping.has(m.id) && !this.starting.has(m.id));
      let running = started.length;
      const min = svc.min_machines_running ?? 0;
      const idle = started
        .map((m) => ({ m, load: this.load(m.id, m.hostPort(svc.internal_port) ?? -1) }))
        .filter(({ load }) => load.inflight === 0 && now - load.lastActive >= this.o.idleStopMs)
        .sort((a, b) => a.load.lastActive - b.load.lastActive);
      for (const { m } of idle) {
        if (running <= min) break;
        running--;
        this.stopping.add(m.id);
        this.stops++;
        this.o.log.info('proxy: stopping idle machine', { app, machine: m.id, idle_ms: now - this.loads.get(m.id)!.lastActive });
        void this.o.backends
          .stop(app, m.id)
          .catch((err: unknown) => this.o.log.warn('proxy: autostop failed', { app, machine: m.id, err }))
          .finally(() => {
            this.stopping.delete(m.id);
            this.loads.delete(m.id);
            this.wake();
          });
      }
    }
  }

  /** The machine refused a connection: no traffic until it answers a probe again. */
  suspect(lease: Lease): void {
    this.o.health.suspect(lease.machine, lease.service, lease.port);
  }

  /** In-flight requests per machine (tests, status). */
  inflight(id: string): number {
    return this.loads.get(id)?.inflight ?? 0;
  }
}
