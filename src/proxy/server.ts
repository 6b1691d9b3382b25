import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createLogger, type Logger } from '../shared/log.js';
import { tick } from './clock.js';
import { acceptClient, checkClient, type Client } from './client.js';
import type { ProxyContext } from './context.js';
import { Exchange } from './exchange.js';
import { HealthTracker } from './health.js';
import { parseResponseHead, type RequestHead } from './http1.js';
import { Pool } from './pool.js';
import { UpstreamPool } from './upstream.js';
import type { ProxyBackends } from './types.js';

/*
 * The proxy, composed: settings and pools (one ProxyContext), the listening
 * server whose connections client.ts serves, one Exchange per request
 * (exchange.ts, tunnels in tunnel.ts, error answers in answers.ts), and one
 * timer for every timeout.
 */

export interface ProxyOptions {
  backends: ProxyBackends;
  /** Apps are served at `<app>.<domain>` (default `localhost`). */
  domain?: string;
  log?: Logger;
  /** A client must send its request headers within this time (default 10 s). */
  headersTimeoutMs?: number;
  /** A client connection with no traffic either way is closed after this (default 60 s). */
  idleTimeoutMs?: number;
  /** A keep-alive client idle this long gives its read buffer back until its next request (default 1 s). */
  releaseIdleBufferMs?: number;
  /** Idle keep-alive client connections are closed after this (default 30 s). */
  keepAliveTimeoutMs?: number;
  /** Largest accepted request header block in bytes (default 16 KiB) → 431 above. */
  maxHeaderSize?: number;
  /** Wait for a slot when all machines are at hard_limit, then 503 (default 2 s). */
  queueTimeoutMs?: number;
  /** Hold requests while a machine boots and its service comes up (default 60 s). */
  startTimeoutMs?: number;
  /** A machine must send response headers within this time, else 504 (default 60 s). */
  responseTimeoutMs?: number;
  /** Autostop idle period (default 5 min). */
  autostopIdleMs?: number;
  /** Retry cadence of readiness probes for booting machines (default 50 ms). */
  probeIntervalMs?: number;
  /** One readiness probe attempt gives up after this (default 2 s). */
  probeTimeoutMs?: number;
}

export interface Proxy {
  /** The listening TCP server (emits 'connection' per client connection). */
  server: Server;
  pool: Pool;
  domain: string;
  /** Binds; returns the bound port. */
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

/** Idle machine connections kept per port, and for how long. */
const UPSTREAM_IDLE_MAX = 256;
const UPSTREAM_IDLE_MS = 4_000;

function newExchange(c: Client, head: RequestHead): Exchange {
  return new Exchange(c, head);
}

export function createProxy(options: ProxyOptions): Proxy {
  const log = options.log ?? createLogger();
  const domain = (options.domain ?? 'localhost').toLowerCase().replace(/^\.|\.$/g, '');
  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  const responseTimeoutMs = options.responseTimeoutMs ?? 60_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  const keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? 30_000;
  let pool: Pool;
  const health = new HealthTracker({
    onChange: () => pool.wake(),
    probeIntervalMs: options.probeIntervalMs ?? 50,
    probeTimeoutMs: options.probeTimeoutMs ?? 2_000,
  });
  pool = new Pool({
    backends: options.backends,
    health,
    log,
    queueTimeoutMs: options.queueTimeoutMs ?? 2_000,
    startTimeoutMs: options.startTimeoutMs ?? 60_000,
    startRetryMs: 5_000,
    idleStopMs: options.autostopIdleMs ?? 300_000,
  });
  const upstreams = new UpstreamPool(UPSTREAM_IDLE_MAX, UPSTREAM_IDLE_MS);
  const ctx: ProxyContext = {
    log,
    domain,
    port: 0,
    headersTimeoutMs,
    responseTimeoutMs,
    idleTimeoutMs,
    keepAliveTimeoutMs,
    releaseIdleBufferMs: options.releaseIdleBufferMs ?? 1_000,
    maxHeaderSize: options.maxHeaderSize ?? 16 * 1024,
    keepAliveHeader: `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(keepAliveTimeoutMs / 1000)}\r\n`,
    pool,
    upstreams,
    scratchResponse: parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), 0, 19),
    exchange: newExchange,
  };
  const clients = new Set<Client>();

  const server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (sock: Socket) => acceptClient(ctx, clients, sock));

  // One timer for every timeout: header, idle, keep-alive, response.
  const sweepMs = Math.max(10, Math.min(1_000, Math.floor(Math.min(headersTimeoutMs, idleTimeoutMs, keepAliveTimeoutMs, responseTimeoutMs) / 4)));
  const sweeper = setInterval(() => {
    const now = tick();
    for (const c of clients) checkClient(c, now);
    upstreams.sweep(now);
  }, sweepMs);
  sweeper.unref();

  let closing: Promise<void> | undefined;
  return {
    server,
    pool,
    domain,
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          ctx.port = (server.address() as AddressInfo).port;
          resolve(ctx.port);
        });
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        clearInterval(sweeper);
        pool.close();
        health.close();
        server.close(() => resolve());
        for (const c of clients) c.sock.destroy();
        upstreams.close();
      });
      return closing;
    },
  };
}
