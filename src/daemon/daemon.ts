import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { openStore, type Store } from '../store/index.js';
import { Accounts } from '../accounts/index.js';
import { Router } from '../http/index.js';
import { accountsRoutes } from '../api/accounts-routes.js';
import { sendApiError } from '../api/errors.js';
import { createLogger, type Logger } from '../shared/log.js';
import { HangarError } from '../shared/errors.js';
import { createRegistry, type PullThroughOptions, type Registry } from '../registry/index.js';
import { RedactingLogStore, Secrets, restartStartedMachines } from '../secrets/index.js';
import { Volumes } from '../volumes/index.js';
import { secretsRoutes } from '../api/secrets-routes.js';
import { volumesRoutes } from '../api/volumes-routes.js';
import { LogStore } from '../logs/index.js';
import { MachineManager, MachineRecords } from '../machines/index.js';
import { machinesRoutes } from '../api/machines-routes.js';
import { logsRoutes } from '../api/logs-routes.js';
import { RootfsCache } from '../rootfs/index.js';
import { getVmDriver, reconcileVms } from '../vm/index.js';
import { createImageProvider } from './image-provider.js';
import { createGuestRunner } from './guest-runner.js';
import { Builder } from '../build/index.js';
import { Deployer, Releases } from '../deploy/index.js';
import { deployRoutes } from '../api/deploy-routes.js';
import { sbomRoutes } from '../api/sbom-routes.js';
import { createProxy, machineBackends, type Proxy } from '../proxy/index.js';

export interface DaemonOptions {
  dataDir: string;
  /** host:port; port 0 picks a free one (tests). */
  listen: string;
  /** host:port of the HTTP edge proxy (default 127.0.0.1:8080). */
  proxyListen?: string;
  /** Apps are served at <app>.<proxyDomain> (default localhost, or $HANGAR_PROXY_DOMAIN). */
  proxyDomain?: string;
  logger?: Logger;
  /**
   * Upstream of the Docker Hub mirror's pull-through (docs/registry.md), e.g.
   * https://registry-1.docker.io; undefined or 'off': no pull-through. The
   * CLI defaults to Docker Hub; embedders and tests opt in. The object form
   * also sets the tag TTL, blob cap and timeout.
   */
  mirrorUpstream?: string | PullThroughOptions;
  /** Unpacked base trees the rootfs cache keeps for redeploys (default 2; 0: none). */
  keepRootfsTrees?: number;
}

/** A component that serves its own URL space (the registry serves /v2/). */
export interface Mount {
  prefixes: string[];
  handle(req: IncomingMessage, res: ServerResponse): void | Promise<void>;
}

export interface Daemon {
  url: string;
  host: string;
  port: number;
  dataDir: string;
  store: Store;
  accounts: Accounts;
  registry: Registry;
  machines: MachineManager;
  logs: LogStore;
  rootfs: RootfsCache;
  secrets: Secrets;
  volumes: Volumes;
  proxy: Proxy;
  /** http://host:port of the edge proxy. */
  proxyUrl: string;
  close(): Promise<void>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new HangarError('BAD_REQUEST', `invalid listen address "${listen}": use HOST:PORT, e.g. 127.0.0.1:4280`);
  }
  return { host: m[1] ?? m[2]!, port };
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const log = options.logger ?? createLogger();
  const { host, port } = parseListen(options.listen);
  const store = openStore(options.dataDir);
  const accounts = new Accounts(store);

  const adminSecret = accounts.bootstrap();
  const adminTokenPath = join(options.dataDir, 'admin-token');
  if (adminSecret) writeFileSync(adminTokenPath, adminSecret + '\n', { mode: 0o600 });
  else if (!existsSync(adminTokenPath)) log.warn('admin-token file is missing; create a token with an admin credential');

  const router = new Router();
  accountsRoutes(router, accounts, {
    // Secrets and volumes are keyed by app name: a new app with the same name must not inherit them.
    afterAppDestroy: (app) => {
      secrets.deleteApp(app.name);
      volumes.deleteApp(app.name);
    },
  });
  // Secrets restart and volumes ask about machines, which are built below.
  const secrets: Secrets = new Secrets({ store, dataDir: options.dataDir, log, restartApp: (app) => restartStartedMachines(machines)(app) });
  const volumes: Volumes = new Volumes({
    store, dataDir: options.dataDir, log, machineState: (id) => records.get(id)?.state,
    // Live snapshots/forks and online extend go through the machine's VM.
    quiesce: (id, v): Promise<() => Promise<void>> => machines.holdVolume(id, v.imagePath, v.holdMs),
    growOnline: (id, v, bytes): Promise<boolean> => machines.growVolume(id, v.imagePath, bytes),
  });
  secretsRoutes(router, accounts, secrets);
  volumesRoutes(router, accounts, volumes);
  const mounts: Mount[] = [];
  const mu = options.mirrorUpstream;
  const mirror = typeof mu === 'string' ? (mu === 'off' || mu === '' ? undefined : { upstream: mu }) : mu;
  const registry = createRegistry({ dataDir: options.dataDir, store, accounts, log, ...(mirror ? { mirror } : {}) });
  mounts.push(registry);

  // Machines: images come from the rootfs cache (reading Hangar's own
  // registry directly), guests from the VM driver.
  let registryHosts: string[] = [];
  const rootfs = new RootfsCache({
    dataDir: options.dataDir,
    localStore: registry,
    localRegistryHosts: () => registryHosts,
    ...(options.keepRootfsTrees !== undefined ? { keepTrees: options.keepRootfsTrees } : {}),
  });
  const logs: LogStore = new RedactingLogStore(store, secrets);
  const records = new MachineRecords(store);
  const machines = new MachineManager({
    records,
    logs,
    images: createImageProvider({ cache: rootfs, accounts, localHosts: () => registryHosts, images: registry }),
    guests: createGuestRunner(getVmDriver()),
    dataDir: options.dataDir,
    log,
    secretsFor: (app) => secrets.valuesFor(app),
    attachMounts: (app, id, config) => volumes.attach(app, id, config),
    detachMounts: (id) => volumes.detach(id),
  });
  machinesRoutes(router, accounts, machines);
  logsRoutes(router, accounts, logs);
  // Builds and deploys (docs/deploy.md): buildah pushes to this daemon's registry over loopback.
  const loopbackRegistry = () => registryHosts.find((h) => h.startsWith('127.0.0.1:')) ?? registryHosts[0]!;
  const builder = new Builder({ dataDir: options.dataDir, registryHost: loopbackRegistry, registryHosts: () => registryHosts, store, accounts, images: registry, log });
  const deployer = new Deployer({ releases: new Releases(store), machines, logs, accounts, images: registry, registryHosts: () => registryHosts, log });
  deployRoutes(router, { accounts, builder, deployer, machines, registryUrl: () => `http://${loopbackRegistry()}`, log });
  // SBOMs and vulnerability scans of images in this registry (docs/sbom-and-vulns.md).
  sbomRoutes(router, { accounts, images: registry, store, releases: new Releases(store), dataDir: options.dataDir, registryHosts: () => registryHosts, log });

  const server: Server = createServer((req, res) => {
    void dispatch(req, res);
  });
  // Registry pushes can be long uploads: no request timeout, but stalled
  // header reads are still bounded.
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 30_000;

  async function dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://daemon');
    try {
      const mount = mounts.find((m) => m.prefixes.some((p) => url.pathname === p.replace(/\/$/, '') || url.pathname.startsWith(p)));
      if (mount) return await mount.handle(req, res);
      const { handler, params } = router.match(req.method ?? 'GET', url.pathname);
      const result = await handler({ req, res, url, params });
      if (!res.writableEnded && !res.headersSent) {
        if (result === undefined) res.writeHead(res.statusCode || 204).end();
        else {
          const text = JSON.stringify(result);
          res.writeHead(res.statusCode || 200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
          res.end(text);
        }
      }
    } catch (err) {
      sendApiError(res, err, log);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new HangarError(
          'LISTEN_FAILED',
          e.code === 'EADDRINUSE'
            ? `${options.listen} is already in use: is another hangar daemon running? choose another address with --listen`
            : `cannot listen on ${options.listen}: ${e.message}`,
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${urlHost}:${bound}`;
  registryHosts = [`${urlHost}:${bound}`, `localhost:${bound}`, `127.0.0.1:${bound}`];
  log.info('hangar daemon listening', { url, dataDir: options.dataDir });

  // Guests outlive the daemon: kill the VMs of machines that should not run
  // (no orphans), then re-adopt the rest.
  const live = new Set(records.list().filter((m) => ['starting', 'started', 'stopping'].includes(m.state)).map((m) => m.id));
  const reconciled = await reconcileVms(join(options.dataDir, 'machines'), (id) => live.has(id));
  for (const h of [...reconciled.adopted, ...reconciled.stopped]) h.detach();
  if (reconciled.killed.length) log.warn('killed VMs of machines that should not run', { pids: reconciled.killed });
  await machines.recover();

  // The HTTP edge (docs/proxy.md). A daemon on an ephemeral API port (tests)
  // gets an ephemeral proxy port too, so parallel daemons never collide on 8080.
  const proxyListen = options.proxyListen ?? (port === 0 ? '127.0.0.1:0' : '127.0.0.1:8080');
  const proxyAt = parseListen(proxyListen);
  const proxy = createProxy({
    backends: machineBackends({
      machines,
      appExists: (name) => accounts.findApp(name) !== undefined,
      apps: () => accounts.listApps({ tokenId: 'proxy', orgId: null }).map((a) => a.name),
    }),
    domain: options.proxyDomain ?? process.env.HANGAR_PROXY_DOMAIN,
    log,
  });
  let proxyPort: number;
  try {
    proxyPort = await proxy.listen(proxyAt.host, proxyAt.port);
  } catch (e) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    machines.close();
    rootfs.close();
    store.close();
    throw new HangarError(
      'LISTEN_FAILED',
      (e as NodeJS.ErrnoException).code === 'EADDRINUSE'
        ? `the proxy address ${proxyListen} is already in use; choose another with --proxy-listen`
        : `cannot listen on ${proxyListen} for the proxy: ${(e as Error).message}`,
    );
  }
  const proxyUrl = `http://${proxyAt.host.includes(':') ? `[${proxyAt.host}]` : proxyAt.host}:${proxyPort}`;
  log.info('hangar proxy listening', { url: proxyUrl, domain: proxy.domain });

  let closing: Promise<void> | undefined;
  return {
    url,
    host,
    port: bound,
    dataDir: options.dataDir,
    store,
    accounts,
    registry,
    machines,
    logs,
    rootfs,
    secrets,
    volumes,
    proxy,
    proxyUrl,
    close() {
      closing ??= (async () => {
        await proxy.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        machines.close();
        rootfs.close();
        logs.flush();
        registry.close();
        store.close();
      })();
      return closing;
    },
  };
}
