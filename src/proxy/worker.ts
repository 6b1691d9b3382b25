import { parentPort, workerData } from 'node:worker_threads';
import { HangarError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { clock } from './clock.js';
import { receiveListener } from './listener.js';
import { CLOSED, LoadTable, takeSlot } from './loads.js';
import type { Lease, LeaseSource, Route } from './pool.js';
import { createDataPlane } from './server.js';
import type { BackendMachine, ProxyService } from './types.js';
import type { FromWorker, ToWorker, WorkerData } from './workers.js';

/*
 * A proxy worker thread (workers.ts): the request path on the shared
 * listening socket, leasing machines from the counters it shares with the
 * main thread, and asking the main thread whenever a lease needs policy.
 */

const port = parentPort!;
const data = workerData as WorkerData;
const table = new LoadTable(data.shared);
const counts = table.counts;
const post = (m: FromWorker) => port.postMessage(m);

/** A route as this thread uses it: machine objects made once per route. */
interface LocalRoute {
  limit: number;
  service: ProxyService;
  machines: { m: BackendMachine; port: number; slot: number }[];
}

function machine(id: string, hostPort: number): BackendMachine {
  return { id, state: 'started', services: [], hostPort: () => hostPort };
}

class WorkerLease implements Lease {
  private done = false;
  constructor(
    readonly machine: BackendMachine,
    readonly service: ProxyService,
    readonly port: number,
    private readonly slot: number,
    readonly app: string,
  ) {}

  release(): void {
    if (this.done) return;
    this.done = true;
    table.give(this.slot, clock.now);
    // The main thread holds requests for a slot: this one is free now.
    if (table.waiting()) post({ t: 'released' });
  }
}

class RemoteLeases implements LeaseSource {
  readonly routes = new Map<string, LocalRoute>();
  private readonly pending = new Map<number, { app: string; resolve(l: Lease): void; reject(e: unknown): void }>();
  private seq = 0;

  setRoute(app: string, r: Route | null): void {
    if (!r) {
      this.routes.delete(app);
      return;
    }
    const service: ProxyService = { internal_port: r.internalPort };
    this.routes.set(app, { limit: Math.min(r.soft, r.hard), service, machines: r.machines.map((x) => ({ m: machine(x.id, x.port), port: x.port, slot: x.slot })) });
  }

  /** As Pool.tryAcquire: the least loaded ready machine below its soft limit, from this thread. */
  tryAcquire(app: string): Lease | undefined {
    const r = this.routes.get(app);
    if (r === undefined) return undefined;
    const limit = r.limit;
    const ms = r.machines;
    let best = -1;
    let bestN = 0;
    for (let i = 0; i < ms.length; i++) {
      const w = Atomics.load(counts, ms[i]!.slot);
      if ((w & CLOSED) !== 0 || w >= limit) continue;
      if (best < 0 || w < bestN) {
        best = i;
        bestN = w;
      }
    }
    if (best < 0) return undefined;
    const pick = ms[best]!;
    if (!takeSlot(counts, pick.slot, limit)) return undefined;
    return new WorkerLease(pick.m, r.service, pick.port, pick.slot, app);
  }

  acquire(app: string, exclude?: Set<string>, maxWaitMs = Infinity): Promise<Lease> {
    const id = ++this.seq;
    return new Promise<Lease>((resolve, reject) => {
      this.pending.set(id, { app, resolve, reject });
      post({ t: 'acquire', id, app, exclude: exclude ? [...exclude] : undefined, maxWaitMs });
    });
  }

  suspect(lease: Lease): void {
    post({ t: 'suspect', app: (lease as WorkerLease).app, machine: lease.machine.id, port: lease.port });
  }

  answer(m: Extract<ToWorker, { t: 'lease' | 'error' }>): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.t === 'error') p.reject(new HangarError(m.code, m.message, { status: m.status, expose: true }));
    else p.resolve(new WorkerLease(machine(m.machine, m.port), { internal_port: m.internalPort }, m.port, m.slot, p.app));
  }
}

/** Log lines go to the main thread's logger. */
function fieldsOut(f: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!f) return f;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(f)) out[k] = v instanceof Error ? { message: v.message, stack: v.stack } : v;
  return out;
}
const log: Logger = {
  info: (msg, f) => post({ t: 'log', level: 'info', msg, fields: fieldsOut(f) }),
  warn: (msg, f) => post({ t: 'log', level: 'warn', msg, fields: fieldsOut(f) }),
  error: (msg, f) => post({ t: 'log', level: 'error', msg, fields: fieldsOut(f) }),
};

const leases = new RemoteLeases();
const dp = createDataPlane(data.settings, leases, log);
dp.ctx.port = data.port;

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'route':
      leases.setRoute(m.app, m.route);
      break;
    case 'lease':
    case 'error':
      leases.answer(m);
      break;
    case 'close':
      void dp.close().then(() => {
        post({ t: 'closed' });
        port.close();
      });
      break;
  }
});

const handle = await receiveListener(data.listener);
dp.server.listen(handle, () => post({ t: 'ready' }));
