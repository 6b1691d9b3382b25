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
import { createRegistry, type Registry } from '../registry/index.js';
import { Secrets } from '../secrets/index.js';
import { Volumes } from '../volumes/index.js';
import { secretsRoutes } from '../api/secrets-routes.js';
import { volumesRoutes } from '../api/volumes-routes.js';

export interface DaemonOptions {
  dataDir: string;
  /** host:port; port 0 picks a free one (tests). */
  listen: string;
  /** host:port of the HTTP edge proxy (default 127.0.0.1:8080). */
  proxyListen?: string;
  logger?: Logger;
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
  secrets: Secrets;
  volumes: Volumes;
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
  accountsRoutes(router, accounts);
  const secrets = new Secrets({ store, dataDir: options.dataDir, log });
  const volumes = new Volumes({ store, dataDir: options.dataDir, log });
  secretsRoutes(router, accounts, secrets);
  volumesRoutes(router, accounts, volumes);
  const mounts: Mount[] = [];
  const registry = createRegistry({ dataDir: options.dataDir, store, accounts, log });
  mounts.push(registry);

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
  log.info('hangar daemon listening', { url, dataDir: options.dataDir });

  let closing: Promise<void> | undefined;
  return {
    url,
    host,
    port: bound,
    dataDir: options.dataDir,
    store,
    accounts,
    registry,
    secrets,
    volumes,
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        registry.close();
        store.close();
      })();
      return closing;
    },
  };
}
