import type { Server } from 'node:net';
import { Worker } from 'node:worker_threads';
import { HangarError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { tick } from './clock.js';
import { offerListener } from './listener.js';
import type { LoadTable, SharedLoads } from './loads.js';
import { handOver, type Pool, type Route } from './pool.js';
import type { DataPlaneSettings } from './server.js';

/*
 * Proxy worker threads (ProxyOptions.workers > 1), main-thread side.
 *
 * Every worker thread accepts client connections on the main thread's
 * listening socket (same descriptor) and runs the whole request path
 * (client.ts, exchange.ts, upstream.ts) itself. What stays on the main
 * thread is the policy: machine states, readiness and checks, autostart,
 * the queue at hard_limit, autostop. The threads share the per-machine
 * in-flight counters (loads.ts, a SharedArrayBuffer), so machine choice is
 * least-outstanding over every thread's requests and the limits are exact.
 *
 * A worker leases on its own, without a message, when a machine of its
 * copy of the app's route (ready machines, limits) has a slot below
 * soft_limit: the common case. Anything else (unknown app, every machine at
 * its soft limit, no started machine, a retry) is asked of the main thread,
 * whose Pool.acquire() answers exactly as for its own requests (autostart
 * once, queue, 503) and hands the slot over. Routes are pushed to the
 * workers when they change: checked every REFRESH_MS (the daemon's machine
 * list is itself cached 200 ms) and right after a start, stop or readiness
 * change. A machine being stopped is closed in the shared counters before
 * the stop, so no thread can lease it from a stale route.
 */

/** How often the routes workers use are recomputed and pushed when changed. */
const REFRESH_MS = 100;

export type ToWorker =
  | { t: 'route'; app: string; route: Route | null }
  | { t: 'lease'; id: number; machine: string; port: number; slot: number; internalPort: number }
  | { t: 'error'; id: number; code: string; status: number; message: string }
  | { t: 'close' };

export type FromWorker =
  | { t: 'ready' }
  | { t: 'acquire'; id: number; app: string; exclude: string[] | undefined; maxWaitMs: number }
  | { t: 'released' }
  | { t: 'suspect'; app: string; machine: string; port: number }
  | { t: 'log'; level: 'info' | 'warn' | 'error'; msg: string; fields: Record<string, unknown> | undefined }
  | { t: 'closed' };

export interface WorkerData {
  /** Where to get this worker's own descriptor of the listening socket (listener.ts). */
  listener: string;
  port: number;
  settings: DataPlaneSettings;
  shared: SharedLoads;
}

export interface Workers {
  /** Something the routes depend on changed (Pool.wake). */
  changed(): void;
  close(): Promise<void>;
}

export interface StartWorkers {
  count: number;
  server: Server;
  port: number;
  settings: DataPlaneSettings;
  table: LoadTable;
  pool: Pool;
  log: Logger;
}

export async function startWorkers(o: StartWorkers): Promise<Workers> {
  const { pool, log } = o;
  const threads: Worker[] = [];
  /** Apps the workers asked about → the route last pushed (as JSON, to see changes). */
  const published = new Map<string, string>();
  let closed = false;

  const publish = (app: string) => {
    let route: Route | null;
    try {
      route = pool.route(app) ?? null;
    } catch (err) {
      log.warn('proxy: cannot list machines for worker routes', { app, err });
      route = null;
    }
    const key = JSON.stringify(route, (_k, v: unknown) => (v === Infinity ? 'inf' : v));
    if (published.get(app) === key) return;
    published.set(app, key);
    const msg: ToWorker = { t: 'route', app, route };
    for (const w of threads) w.postMessage(msg);
  };
  const refresh = () => {
    if (closed) return;
    // This thread reads no sockets now, so its clock (health, idle times) is kept here.
    tick();
    for (const app of published.keys()) publish(app);
  };
  let soon = false;
  const refreshSoon = () => {
    if (soon || closed) return;
    soon = true;
    setImmediate(() => {
      soon = false;
      refresh();
    });
  };
  const timer = setInterval(refresh, REFRESH_MS);
  timer.unref();

  const onMessage = (w: Worker, m: FromWorker) => {
    tick();
    switch (m.t) {
      case 'acquire': {
        pool.acquire(m.app, m.exclude ? new Set(m.exclude) : undefined, m.maxWaitMs).then(
          (lease) => {
            const slot = handOver(lease);
            if (slot < 0) {
              lease.release();
              const reply: ToWorker = { t: 'error', id: m.id, code: 'UNAVAILABLE', status: 503, message: 'the proxy has more machines than its worker threads can track; restart the daemon with one proxy thread' };
              w.postMessage(reply);
              return;
            }
            const reply: ToWorker = { t: 'lease', id: m.id, machine: lease.machine.id, port: lease.port, slot, internalPort: lease.service.internal_port };
            w.postMessage(reply);
          },
          (err: unknown) => {
            let reply: ToWorker;
            if (err instanceof HangarError && err.expose) reply = { t: 'error', id: m.id, code: err.code, status: err.status, message: err.message };
            else {
              log.error('proxy: internal error', { err });
              reply = { t: 'error', id: m.id, code: 'INTERNAL', status: 500, message: 'the proxy failed to route this request; see the daemon log' };
            }
            w.postMessage(reply);
          },
        );
        if (!published.has(m.app)) publish(m.app);
        else refreshSoon();
        break;
      }
      case 'released':
        pool.wake();
        break;
      case 'suspect':
        pool.suspectMachine(m.app, m.machine, m.port);
        refreshSoon();
        break;
      case 'log':
        log[m.level](m.msg, m.fields);
        break;
    }
  };

  const offer = offerListener(o.server);
  const started = Array.from({ length: o.count }, () => {
    const data: WorkerData = { listener: offer.path, port: o.port, settings: o.settings, shared: o.table.shared };
    const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: data });
    threads.push(w);
    return new Promise<void>((resolve, reject) => {
      w.on('message', (m: FromWorker) => {
        if (m.t === 'ready') resolve();
        else onMessage(w, m);
      });
      w.once('error', (err) => {
        reject(err);
        if (!closed) log.error('proxy: worker thread failed', { err });
      });
      w.once('exit', (code) => {
        reject(new Error(`proxy worker thread exited (${code}) before it was ready`));
        if (!closed) log.error('proxy: worker thread exited', { code });
      });
    });
  });
  const workers: Workers = {
    changed: refreshSoon,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await Promise.all(
        threads.map(
          (w) =>
            new Promise<void>((resolve) => {
              if (w.threadId === -1) return resolve();
              const kill = setTimeout(() => void w.terminate(), 2_000);
              w.once('exit', () => {
                clearTimeout(kill);
                resolve();
              });
              w.postMessage({ t: 'close' } satisfies ToWorker);
            }),
        ),
      );
    },
  };
  try {
    await Promise.all(started);
  } catch (err) {
    await workers.close();
    throw err;
  } finally {
    offer.close();
  }
  return workers;
}
