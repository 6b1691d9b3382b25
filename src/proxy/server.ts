import { Agent, createServer, request, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { HangarError } from '../shared/errors.js';
import { createLogger, type Logger } from '../shared/log.js';
import { appFromHost } from './host.js';
import { downstreamHeaders, hasBody, upstreamHeaders } from './headers.js';
import { HealthTracker } from './health.js';
import { Pool, type Lease } from './pool.js';
import type { ProxyBackends } from './types.js';

export interface ProxyOptions {
  backends: ProxyBackends;
  /** Apps are served at `<app>.<domain>` (default `localhost`). */
  domain?: string;
  log?: Logger;
  /** A client must send its request headers within this time (default 10 s). */
  headersTimeoutMs?: number;
  /** A client connection with no traffic either way is closed after this (default 60 s). */
  idleTimeoutMs?: number;
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
  server: Server;
  pool: Pool;
  domain: string;
  /** Binds; returns the bound port. */
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

/** Connection-level failures where the machine never saw the request. */
const NEVER_SENT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const RESET = new Set(['ECONNRESET', 'EPIPE']);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS']);
const MAX_ATTEMPTS = 3;
interface Retry {
  reason: string;
  sameMachineOk: boolean;
}
/** A retry takes another machine that is ready now, or gives up. */
const RETRY_WAIT_MS = 0;

let seq = 0;
const idPrefix = randomBytes(4).toString('hex');
function newRequestId(): string {
  return `${idPrefix}${(++seq).toString(16).padStart(8, '0')}-local`;
}

function textResponse(status: number, message: string, requestId?: string): { head: string; body: string } {
  const body = message.endsWith('\n') ? message : message + '\n';
  const head =
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    (requestId ? `Fly-Request-Id: ${requestId}\r\n` : '') +
    `Connection: close\r\n\r\n`;
  return { head, body };
}

export function createProxy(options: ProxyOptions): Proxy {
  const log = options.log ?? createLogger();
  const domain = (options.domain ?? 'localhost').toLowerCase().replace(/^\.|\.$/g, '');
  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  const responseTimeoutMs = options.responseTimeoutMs ?? 60_000;
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

  // One keep-alive pool per machine port.
  const agents = new Map<number, Agent>();
  function agentFor(port: number): Agent {
    let a = agents.get(port);
    if (!a) {
      a = new Agent({ keepAlive: true, keepAliveMsecs: 1_000, maxFreeSockets: 256, scheduling: 'lifo' });
      agents.set(port, a);
    }
    return a;
  }

  const server = createServer({
    maxHeaderSize: options.maxHeaderSize ?? 16 * 1024,
    // Uploads may be long; stalls are bounded by the idle timeout instead.
    requestTimeout: 0,
    headersTimeout: headersTimeoutMs,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
    connectionsCheckingInterval: Math.min(1_000, headersTimeoutMs),
  });
  server.timeout = options.idleTimeoutMs ?? 60_000;
  let listenPort = 0;

  function sendError(res: ServerResponse, status: number, message: string, requestId: string): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = message + '\n';
    res.writeHead(status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'fly-request-id': requestId,
      'cache-control': 'no-store',
    });
    res.end(body);
  }

  function errorStatus(err: unknown): { status: number; message: string } {
    if (err instanceof HangarError && err.expose) return { status: err.status, message: err.message };
    log.error('proxy: internal error', { err });
    return { status: 500, message: 'the proxy failed to route this request; see the daemon log' };
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const requestId = newRequestId();
    const app = appFromHost(req.headers.host, domain);
    if (!app) {
      sendError(res, 404, `no app is served at host "${req.headers.host ?? ''}": use http://<app>.${domain}:${listenPort}/`, requestId);
      return;
    }
    void route(req, res, app, requestId);
  });

  async function route(req: IncomingMessage, res: ServerResponse, app: string, requestId: string): Promise<void> {
    let exclude: Set<string> | undefined;
    let lastFailure: string | undefined;
    const bodyless = !hasBody(req);
    for (let attempt = 1; ; attempt++) {
      let lease: Lease;
      try {
        lease = await pool.acquire(app, exclude, exclude ? RETRY_WAIT_MS : Infinity);
      } catch (err) {
        const { status, message } = errorStatus(err);
        // Having tried a machine already, its failure is the better answer.
        if (lastFailure && status === 503) sendError(res, 502, lastFailure, requestId);
        else sendError(res, status, message, requestId);
        return;
      }
      if (res.destroyed || req.destroyed) {
        lease.release();
        return;
      }
      const outcome = await forward(req, res, lease, requestId, bodyless);
      if (outcome === undefined) return;
      lastFailure = outcome.reason;
      if (attempt >= MAX_ATTEMPTS) {
        sendError(res, 502, outcome.reason, requestId);
        return;
      }
      if (!outcome.sameMachineOk) (exclude ??= new Set()).add(lease.machine.id);
    }
  }

  /**
   * Proxies one request to one machine. Resolves undefined when the exchange
   * is over (or failed for good), or why it may be tried again: on another
   * machine, or on the same one when only a stale pooled connection failed.
   */
  function forward(req: IncomingMessage, res: ServerResponse, lease: Lease, requestId: string, bodyless: boolean): Promise<Retry | undefined> {
    return new Promise((resolve) => {
      const clientIp = req.socket.remoteAddress ?? '';
      const preq = request({
        host: '127.0.0.1',
        port: lease.port,
        method: req.method,
        path: req.url,
        headers: upstreamHeaders(req, { requestId, clientIp, port: listenPort, upgrade: false }),
        agent: agentFor(lease.port),
        setHost: false,
      });
      let bodyStarted = false;
      let responded = false;
      let settled = false;
      const finish = (retry?: Retry) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        lease.release();
        resolve(retry);
      };
      const timer = setTimeout(() => preq.destroy(Object.assign(new Error('response timeout'), { code: 'HANGAR_RESPONSE_TIMEOUT' })), responseTimeoutMs);

      if (bodyless) preq.end();
      else {
        // The body is only read once the machine's connection is up, so a
        // refused connection leaves it unread and the request can go elsewhere.
        preq.once('socket', (sock: Socket) => {
          const send = () => {
            bodyStarted = true;
            req.pipe(preq);
          };
          if (sock.connecting) sock.once('connect', send);
          else send();
        });
      }

      preq.once('response', (pres: IncomingMessage) => {
        responded = true;
        clearTimeout(timer);
        res.writeHead(pres.statusCode ?? 502, pres.statusMessage, downstreamHeaders(pres.rawHeaders, requestId));
        pres.pipe(res);
        // A machine dying mid-body must not leave the client waiting.
        pres.once('aborted', () => res.destroy());
        pres.once('error', () => res.destroy());
        res.once('close', () => {
          if (!pres.complete) pres.destroy();
          finish();
        });
      });

      preq.once('error', (err: NodeJS.ErrnoException) => {
        if (responded) {
          res.destroy();
          finish();
          return;
        }
        const code = err.code ?? '';
        const where = `machine ${lease.machine.id} (port ${lease.service.internal_port})`;
        if (code === 'HANGAR_RESPONSE_TIMEOUT') {
          sendError(res, 504, `${where} sent no response within ${responseTimeoutMs / 1000}s`, requestId);
          finish();
          return;
        }
        if (NEVER_SENT.has(code)) {
          pool.suspect(lease);
          if (!bodyStarted) return finish({ reason: `${where} refused the connection (${code})`, sameMachineOk: false });
        }
        // A bodyless idempotent request the machine dropped without a byte of
        // answer is safe to send again. On a pooled connection that is the
        // keep-alive race (the machine closed it as we reused it; servers
        // that close after every answer without saying so hit it on every
        // other request): a fresh connection to the same machine is fine.
        if (RESET.has(code) && bodyless && IDEMPOTENT.has(req.method ?? '')) {
          return finish({ reason: `${where} closed the connection without answering (${code})`, sameMachineOk: preq.reusedSocket });
        }
        if (!res.destroyed) sendError(res, 502, `${where} failed before answering: ${code || err.message}`, requestId);
        finish();
      });

      // Client gone before the answer: abandon the machine request.
      res.once('close', () => {
        if (!responded) {
          preq.destroy();
          finish();
        }
      });
    });
  }

  // --- websockets and other upgrades ----------------------------------------

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const requestId = newRequestId();
    socket.on('error', () => socket.destroy());
    const name = appFromHost(req.headers.host, domain);
    const fail = (status: number, message: string) => {
      if (socket.destroyed) return;
      const r = textResponse(status, message, requestId);
      socket.end(r.head + r.body);
    };
    if (!name) return fail(404, `no app is served at host "${req.headers.host ?? ''}": use http://<app>.${domain}:${listenPort}/`);
    void (async () => {
      let exclude: Set<string> | undefined;
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        let lease: Lease;
        try {
          lease = await pool.acquire(name, exclude, exclude ? RETRY_WAIT_MS : Infinity);
        } catch (err) {
          const e = errorStatus(err);
          return fail(e.status, e.message);
        }
        if (socket.destroyed) return lease.release();
        const retry = await tunnel(req, socket, head, lease, requestId, fail);
        if (retry === undefined) return;
        (exclude ??= new Set()).add(lease.machine.id);
        if (attempt === MAX_ATTEMPTS) fail(502, retry);
      }
    })();
  });

  function tunnel(req: IncomingMessage, socket: Socket, head: Buffer, lease: Lease, requestId: string, fail: (s: number, m: string) => void): Promise<string | undefined> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (retry?: string) => {
        if (done) return;
        done = true;
        lease.release();
        resolve(retry);
      };
      const preq = request({
        host: '127.0.0.1',
        port: lease.port,
        method: req.method,
        path: req.url,
        headers: upstreamHeaders(req, { requestId, clientIp: req.socket.remoteAddress ?? '', port: listenPort, upgrade: true }),
        agent: false,
        setHost: false,
      });
      preq.once('upgrade', (pres: IncomingMessage, psock: Socket, phead: Buffer) => {
        let headText = `HTTP/1.1 ${pres.statusCode} ${pres.statusMessage}\r\n`;
        const raw = pres.rawHeaders;
        for (let i = 0; i < raw.length; i += 2) headText += `${raw[i]}: ${raw[i + 1]}\r\n`;
        headText += `Fly-Request-Id: ${requestId}\r\n\r\n`;
        // Websockets are often quiet for long stretches; only a close ends them.
        socket.setTimeout(0);
        socket.setNoDelay(true);
        psock.setNoDelay(true);
        socket.write(headText);
        if (phead.length) socket.write(phead);
        if (head.length) psock.write(head);
        psock.pipe(socket);
        socket.pipe(psock);
        const close = () => {
          socket.destroy();
          psock.destroy();
          finish();
        };
        psock.once('close', close);
        socket.once('close', close);
        psock.on('error', close);
        // No half-open tunnels (as nginx): one side's FIN is passed on, then
        // both are closed once it is flushed.
        psock.once('end', () => socket.end(close));
        socket.once('end', () => psock.end(close));
      });
      preq.once('response', (pres: IncomingMessage) => {
        // The machine declined the upgrade: relay its plain answer.
        let headText = `HTTP/1.1 ${pres.statusCode} ${pres.statusMessage}\r\n`;
        const raw = downstreamHeaders(pres.rawHeaders, requestId);
        for (let i = 0; i < raw.length; i += 2) headText += `${raw[i]}: ${raw[i + 1]}\r\n`;
        headText += 'Connection: close\r\n\r\n';
        socket.write(headText);
        pres.pipe(socket);
        pres.once('end', () => finish());
        socket.once('close', () => {
          pres.destroy();
          finish();
        });
      });
      preq.once('error', (err: NodeJS.ErrnoException) => {
        const code = err.code ?? '';
        const where = `machine ${lease.machine.id} (port ${lease.service.internal_port})`;
        if (NEVER_SENT.has(code)) {
          pool.suspect(lease);
          return finish(`${where} refused the connection (${code})`);
        }
        fail(502, `${where} failed before completing the upgrade: ${code || err.message}`);
        finish();
      });
      socket.once('close', () => {
        if (!done) preq.destroy();
      });
      preq.end();
    });
  }

  // --- malformed, oversized and stalled requests ------------------------------

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    let r;
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      r = textResponse(431, `request headers are larger than the ${options.maxHeaderSize ?? 16 * 1024} bytes this proxy accepts; send fewer or smaller headers (cookies)`);
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      r = textResponse(408, `the request headers did not arrive within ${headersTimeoutMs / 1000}s`);
    } else {
      r = textResponse(400, `malformed HTTP request (${err.code ?? 'parse error'})`);
    }
    socket.end(r.head + r.body);
  });

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
          listenPort = (server.address() as AddressInfo).port;
          resolve(listenPort);
        });
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        pool.close();
        health.close();
        server.close(() => resolve());
        server.closeAllConnections();
        for (const a of agents.values()) a.destroy();
      });
      return closing;
    },
  };
}
