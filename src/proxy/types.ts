/**
 * What the proxy needs from the rest of Hangar: the machines of an app, and
 * a way to start and stop them. The daemon passes an adapter over the
 * MachineManager (machines-adapter.ts); tests pass their own implementation
 * whose "machines" are real HTTP servers on 127.0.0.1.
 */

export interface ProxyCheck {
  type?: 'tcp' | 'http';
  port?: number;
  interval?: string | number;
  timeout?: string | number;
  grace_period?: string | number;
  method?: string;
  path?: string;
  headers?: { name: string; values: string[] }[];
}

/** The fields of a machine's `services[]` entry the proxy acts on (Fly's shape). */
export interface ProxyService {
  protocol?: 'tcp' | 'udp';
  internal_port: number;
  ports?: { port?: number; handlers?: string[] }[];
  autostart?: boolean;
  autostop?: boolean | 'off' | 'stop' | 'suspend';
  min_machines_running?: number;
  concurrency?: { type?: 'connections' | 'requests'; soft_limit?: number; hard_limit?: number };
  checks?: ProxyCheck[];
}

export interface BackendMachine {
  id: string;
  /** Machine state as the Machines API reports it: started, stopped, starting, ... */
  state: string;
  services: ProxyService[];
  /** 127.0.0.1 port where the guest's `internalPort` is reachable (started machines). */
  hostPort(internalPort: number): number | undefined;
  /** Why the machine is in its state (a boot failure), for error bodies. */
  reason?: string | null;
}

export interface ProxyBackends {
  /**
   * The app's machines; undefined when there is no such app (→ 404). The
   * proxy remembers which service takes HTTP per returned array: return a
   * new array when machines' `services` change (the adapter does).
   */
  machinesFor(app: string): BackendMachine[] | undefined;
  /** Start a machine; resolves once it is started (booted), rejects with a reason. */
  start(app: string, id: string): Promise<void>;
  /** Stop a machine (autostop). */
  stop(app: string, id: string): Promise<void>;
  /** Every app name, for the autostop sweep (optional: else apps seen by the proxy). */
  apps?(): string[];
}
