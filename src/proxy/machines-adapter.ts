import type { MachineManager, MachineRecord } from '../machines/index.js';
import type { BackendMachine, ProxyBackends, ProxyService } from './types.js';

export interface MachineBackendsOptions {
  machines: MachineManager;
  /** Whether an app of that name exists (unknown apps answer 404). */
  appExists(name: string): boolean;
  /** All app names, for the autostop sweep. */
  apps(): string[];
  /**
   * Machine lists are read from SQLite at most this often per app (default
   * 200 ms): the hot path must not query per request. Any machine state
   * change invalidates its app's list at once.
   */
  cacheMs?: number;
  /** How long a start may take to reach `started` (default 120 s). */
  startTimeoutMs?: number;
}

function toBackend(m: MachineRecord): BackendMachine {
  const ports = m.ports ?? {};
  return {
    id: m.id,
    state: m.state,
    services: (m.config.services ?? []) as ProxyService[],
    reason: m.reason,
    hostPort: (p) => ports[String(p)],
  };
}

/** The proxy's view of the real MachineManager. */
export function machineBackends(o: MachineBackendsOptions): ProxyBackends {
  const cacheMs = o.cacheMs ?? 200;
  const cache = new Map<string, { at: number; list: BackendMachine[] | undefined; routable: boolean }>();
  // A stop, crash or start made anywhere (API, restart policy, the guest
  // exiting) is seen by the next request, not up to cacheMs later: routing
  // to a machine that just stopped would answer 502 instead of starting it.
  o.machines.onStateChange((app) => cache.delete(app));
  return {
    machinesFor(app) {
      const now = Date.now();
      const hit = cache.get(app);
      // Only a list with a started machine is served from the cache: a machine
      // just created or started elsewhere must be seen at once.
      if (hit && now - hit.at < cacheMs && hit.routable) return hit.list;
      const list = o.appExists(app) ? o.machines.list(app).map(toBackend) : undefined;
      cache.set(app, { at: now, list, routable: list?.some((m) => m.state === 'started') ?? false });
      if (cache.size > 10_000) cache.clear();
      return list;
    },
    async start(app, id) {
      try {
        await o.machines.start(app, id);
        let m = o.machines.get(app, id);
        if (m.state === 'starting') m = await o.machines.wait(app, id, 'started', o.startTimeoutMs ?? 120_000);
        if (m.state !== 'started') throw new Error(m.reason ? `it is ${m.state}: ${m.reason}` : `it is ${m.state}`);
      } finally {
        cache.delete(app);
      }
    },
    async stop(app, id) {
      try {
        await o.machines.stop(app, id);
      } finally {
        cache.delete(app);
      }
    },
    apps: () => o.apps(),
  };
}
