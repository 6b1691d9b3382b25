import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { durationToMs } from '../machines/index.js';
import { clock } from './clock.js';
import type { BackendMachine, ProxyCheck, ProxyService } from './types.js';

export type Health = 'pending' | 'passing' | 'failing';

interface Entry {
  port: number;
  status: Health;
  lastSeen: number;
  timer?: NodeJS.Timeout;
  /** Probe or check attempts in flight. */
  inflight: number;
  /** Bumped on every status change: results of attempts begun before it are stale. */
  gen: number;
}

export interface HealthOptions {
  /** Called whenever a machine's status changes (wakes held requests). */
  onChange(): void;
  /** Retry cadence while a machine has not answered yet. */
  probeIntervalMs: number;
  probeTimeoutMs: number;
}

const DEFAULT_CHECK_INTERVAL_MS = 15_000;
const DEFAULT_CHECK_TIMEOUT_MS = 2_000;
/** Entries not asked about for this long belong to gone machines. */
const FORGET_AFTER_MS = 60_000;
/**
 * Attempts in flight (while a machine is pending): enough that one starts
 * every probe interval for a whole probe timeout. Behind qemu's user-mode
 * port forward an attempt made before the guest's network is up hangs
 * until it times out (the forward accepted it; its SYN to the guest was
 * lost), so with fewer slots every slot could be held by such an attempt
 * when the app comes up, and nothing would notice until they time out
 * (traced with a fixed 8: a guest up at 3.5 s was noticed at ~4.2 s).
 */
function maxAttempts(timeoutMs: number, intervalMs: number): number {
  return Math.min(Math.ceil(timeoutMs / Math.max(intervalMs, 1)) + 1, 64);
}

/**
 * Whether a started machine may get traffic. A machine boot is "pending"
 * until its service answers: with qemu user networking the forwarded host
 * port accepts connections as soon as qemu runs, long before the app
 * listens, so a plain connect proves nothing. The default probe sends
 * `HEAD /` and waits for the first response byte; configured service checks
 * (tcp/http) replace it and keep running at their interval.
 */
export class HealthTracker {
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  constructor(private readonly o: HealthOptions) {}

  status(m: BackendMachine, svc: ProxyService, port: number): Health {
    let e = this.entries.get(m.id);
    // Per request: the read's clock (lastSeen only ages entries out after a minute).
    const now = clock.now;
    if (!e || e.port !== port) {
      if (e?.timer) clearTimeout(e.timer);
      e = { port, status: 'pending', lastSeen: now, inflight: 0, gen: 0 };
      this.entries.set(m.id, e);
      this.schedule(m, svc, e, 0);
    }
    e.lastSeen = now;
    return e.status;
  }

  /** A connection to the machine was refused: hold traffic until it answers again. */
  suspect(m: BackendMachine, svc: ProxyService, port: number): void {
    const e = this.entries.get(m.id);
    if (!e || e.port !== port || e.status === 'pending') return;
    e.status = 'pending';
    e.gen++;
    if (e.timer) clearTimeout(e.timer);
    this.schedule(m, svc, e, 0);
  }

  prune(): void {
    const now = Date.now();
    for (const [id, e] of this.entries) {
      if (now - e.lastSeen > FORGET_AFTER_MS) {
        if (e.timer) clearTimeout(e.timer);
        this.entries.delete(id);
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const e of this.entries.values()) if (e.timer) clearTimeout(e.timer);
    this.entries.clear();
  }

  private schedule(m: BackendMachine, svc: ProxyService, e: Entry, delay: number): void {
    e.timer = setTimeout(() => void this.run(m, svc, e), delay);
    e.timer.unref();
  }

  private run(m: BackendMachine, svc: ProxyService, e: Entry): void {
    e.timer = undefined;
    if (this.closed || this.entries.get(m.id) !== e) return;
    if (Date.now() - e.lastSeen > FORGET_AFTER_MS) {
      this.entries.delete(m.id);
      return;
    }
    const checks = svc.checks ?? [];
    const pending = e.status === 'pending';
    // While pending, attempts overlap: one that hangs (a guest still booting
    // behind qemu's forward) must not delay noticing the app is up.
    const timeoutMs = checks.length === 0 ? this.o.probeTimeoutMs : Math.max(...checks.map((c) => durationToMs(c.timeout, DEFAULT_CHECK_TIMEOUT_MS)));
    if (e.inflight < maxAttempts(timeoutMs, this.o.probeIntervalMs)) {
      e.inflight++;
      const gen = e.gen;
      const attempt = checks.length === 0
        ? probe(e.port, this.o.probeTimeoutMs)
        : Promise.all(checks.map((c) => runCheck(m, svc, c))).then((r) => r.every(Boolean));
      void attempt.catch(() => false).then((ok) => this.settle(m, svc, e, ok, checks, gen));
    }
    if (pending) this.schedule(m, svc, e, this.o.probeIntervalMs);
  }

  private settle(m: BackendMachine, svc: ProxyService, e: Entry, ok: boolean, checks: ProxyCheck[], gen: number): void {
    e.inflight--;
    if (this.closed || this.entries.get(m.id) !== e) return;
    // An overlapping attempt from the pending phase that times out after
    // another one succeeded says nothing about the machine now.
    if (gen !== e.gen && !(ok && e.status === 'pending')) return;
    const before = e.status;
    // Until the first pass a failure is just "not up yet".
    if (ok) e.status = 'passing';
    else if (before !== 'pending') e.status = 'failing';
    if (e.status !== before) {
      e.gen++;
      if (e.timer) clearTimeout(e.timer);
      e.timer = undefined;
      this.o.onChange();
    }
    if (checks.length > 0 && e.status !== 'pending' && !e.timer) {
      const every = Math.min(...checks.map((c) => durationToMs(c.interval, DEFAULT_CHECK_INTERVAL_MS)));
      this.schedule(m, svc, e, e.status === 'failing' ? Math.min(every, 1_000) : every);
    }
  }
}

/** Sends HEAD / and resolves true on the first byte of any HTTP answer. */
export function probe(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock: Socket = connect({ host: '127.0.0.1', port });
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.once('connect', () => sock.write('HEAD / HTTP/1.1\r\nHost: hangar-proxy-probe\r\nUser-Agent: hangar-proxy\r\nConnection: close\r\n\r\n'));
    sock.once('data', () => finish(true));
    sock.once('error', () => finish(false));
    sock.once('close', () => finish(false));
  });
}

async function runCheck(m: BackendMachine, svc: ProxyService, c: ProxyCheck): Promise<boolean> {
  const port = m.hostPort(c.port ?? svc.internal_port);
  if (port === undefined) return false;
  const timeoutMs = durationToMs(c.timeout, DEFAULT_CHECK_TIMEOUT_MS);
  if ((c.type ?? 'tcp') === 'tcp') return tcpCheck(port, timeoutMs);
  return new Promise((resolve) => {
    const headers: Record<string, string[]> = { 'user-agent': ['hangar-proxy-check'] };
    for (const h of c.headers ?? []) headers[h.name] = h.values;
    const req = request(
      { host: '127.0.0.1', port, method: c.method ?? 'GET', path: c.path ?? '/', headers, timeout: timeoutMs, agent: false },
      (res) => {
        res.resume();
        resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * A TCP check passes when the connection is accepted and not closed right
 * away: behind qemu's port forward a refused guest connection shows up as
 * an accept followed by an immediate close.
 */
function tcpCheck(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    let settle: NodeJS.Timeout | undefined;
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      if (settle) clearTimeout(settle);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.once('connect', () => {
      settle = setTimeout(() => finish(true), Math.min(200, timeoutMs / 2));
    });
    sock.once('error', () => finish(false));
    sock.once('close', () => finish(false));
  });
}
