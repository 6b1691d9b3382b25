import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import { randomBytes } from 'node:crypto';
import { HangarError } from '../shared/errors.js';
import { createLogger, type Logger } from '../shared/log.js';
import { appFromHost } from './host.js';
import { connectionTail, downstreamHead, interimHead, upstreamHead } from './headers.js';
import { HealthTracker } from './health.js';
import { ChunkedReader, HttpError, headEnd, parseRequestHead, parseResponseHead, skipEmptyLines, type RequestHead, type ResponseHead } from './http1.js';
import { Pool, type Lease } from './pool.js';
import { UpstreamPool, type Upstream, type UpstreamOwner } from './upstream.js';
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
  /** The listening TCP server (emits 'connection' per client connection). */
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
/** A retry takes another machine that is ready now, or gives up. */
const RETRY_WAIT_MS = 0;
/** Largest response head accepted from a machine. */
const MAX_RESPONSE_HEAD = 64 * 1024;
/** Client bytes held while a request waits for its machine (then reading pauses). */
const HOLD_BYTES = 64 * 1024;
/** Idle machine connections kept per port, and for how long. */
const UPSTREAM_IDLE_MAX = 256;
const UPSTREAM_IDLE_MS = 4_000;
/** A connection we are closing gets this long to finish. */
const LINGER_MS = 5_000;

/**
 * Writes `prefix` (a head, latin1) and `data` with one write call: one
 * syscall and no writev bookkeeping for the common small answer.
 */
function writeJoined(sock: Socket, prefix: Buffer, data: Buffer | null): boolean {
  if (data === null || data.length === 0) return sock.write(prefix);
  return sock.write(Buffer.concat([prefix, data], prefix.length + data.length));
}

const EMPTY = Buffer.alloc(0);
let seq = 0;
const idPrefix = randomBytes(4).toString('hex');
function newRequestId(): string {
  return `${idPrefix}${(++seq).toString(16).padStart(8, '0')}-local`;
}

// Exchange phases.
const ACQUIRE = 0; // waiting for a machine (queue, autostart)
const CONNECT = 1; // machine connection opening; nothing sent yet
const WAIT = 2; // request sent (body may still stream), no response head yet
const BODY = 3; // response head sent to the client, body streaming
const TUNNEL = 4; // upgraded: bytes spliced both ways
const DONE = 5;

// Response body framing.
const NONE = 0;
const LENGTH = 1;
const CHUNKED = 2;
const CLOSE = 3;

/** What a client connection hears about the exchange running on it. */
interface ActiveExchange {
  onClientData(chunk: Buffer): void;
  onClientDrain(): void;
  onClientEnd(): void;
  onClientClose(): void;
  check(now: number): void;
}

/** One client connection. */
class Client {
  buf: Buffer | null = null;
  /** Bytes of buf already searched for the end of a head. */
  scanned = 0;
  /** When the current request head began; 0 while idle between requests. */
  headSince = 0;
  lastActive: number;
  ex: ActiveExchange | null = null;
  /** We are closing it: input is drained and ignored. */
  closing = 0;
  /** The client sent FIN. */
  ended = false;
  paused = false;
  parsing = false;
  /** No byte received yet (a silent close, not 408, when it times out). */
  fresh = true;
  readonly ip: string;
  /** The constant part of the headers added to this connection's requests. */
  readonly connTail: string;
  /** Last Host → app on this connection (clients repeat their Host). */
  lastHost: string | undefined = undefined;
  lastApp: string | undefined = undefined;

  constructor(
    readonly sock: Socket,
    port: number,
  ) {
    this.ip = sock.remoteAddress ?? '';
    this.connTail = connectionTail(this.ip, port);
    this.lastActive = Date.now();
  }

  pause(): void {
    if (!this.paused) {
      this.paused = true;
      this.sock.pause();
    }
  }

  resume(): void {
    if (this.paused) {
      this.paused = false;
      this.sock.resume();
    }
  }
}

export function createProxy(options: ProxyOptions): Proxy {
  const log = options.log ?? createLogger();
  const domain = (options.domain ?? 'localhost').toLowerCase().replace(/^\.|\.$/g, '');
  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  const responseTimeoutMs = options.responseTimeoutMs ?? 60_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  const keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? 30_000;
  const maxHeaderSize = options.maxHeaderSize ?? 16 * 1024;
  const keepAliveHeader = `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(keepAliveTimeoutMs / 1000)}\r\n`;
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
  // Response heads are consumed as soon as they are parsed: one object for all.
  const scratchResponse = parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), 0, 19);
  const clients = new Set<Client>();
  let listenPort = 0;

  function errorHead(status: number, body: string, requestId: string | undefined, close: boolean): string {
    return (
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      (requestId ? `Fly-Request-Id: ${requestId}\r\n` : '') +
      'Cache-Control: no-store\r\n' +
      (close ? 'Connection: close\r\n' : keepAliveHeader) +
      '\r\n'
    );
  }

  function errorStatus(err: unknown): { status: number; message: string } {
    if (err instanceof HangarError && err.expose) return { status: err.status, message: err.message };
    log.error('proxy: internal error', { err });
    return { status: 500, message: 'the proxy failed to route this request; see the daemon log' };
  }

  /** Stops serving a client: answer sent (or not), FIN, input ignored until it closes. */
  function closeClient(c: Client): void {
    if (c.closing) return;
    c.closing = Date.now();
    c.buf = null;
    if (c.sock.destroyed) return;
    c.resume();
    // Input is read (and dropped) until the client closes too, so unread
    // bytes do not turn our FIN into a reset that loses the answer.
    if (c.ended) c.sock.end(() => c.sock.destroy());
    else c.sock.end();
  }

  /** Answers without a machine (parse errors, 404, 503...) and closes. */
  function reject(c: Client, status: number, message: string, requestId?: string): void {
    const body = message.endsWith('\n') ? message : message + '\n';
    c.sock.write(errorHead(status, body, requestId, true) + body);
    closeClient(c);
  }

  /** Reads request heads from the client's buffer and starts exchanges. */
  function parseHeads(c: Client): void {
    if (c.parsing) return;
    c.parsing = true;
    try {
      while (c.ex === null && c.closing === 0 && c.buf !== null) {
        const buf = c.buf;
        const skip = skipEmptyLines(buf);
        const end = headEnd(buf, Math.max(c.scanned, skip));
        if (end < 0) {
          if (buf.length - skip > maxHeaderSize) return reject(c, 431, `request headers are larger than the ${maxHeaderSize} bytes this proxy accepts; send fewer or smaller headers (cookies)`);
          c.scanned = buf.length;
          if (skip === buf.length) {
            c.buf = null;
            c.scanned = 0;
          }
          return;
        }
        if (end - skip > maxHeaderSize) return reject(c, 431, `request headers are larger than the ${maxHeaderSize} bytes this proxy accepts; send fewer or smaller headers (cookies)`);
        let head: RequestHead;
        try {
          head = parseRequestHead(buf, skip, end);
        } catch (err) {
          if (err instanceof HttpError) return reject(c, err.status, `malformed HTTP request: ${err.message}`);
          throw err;
        }
        c.buf = end === buf.length ? null : buf.subarray(end);
        c.scanned = 0;
        c.headSince = 0;
        const ex = new Exchange(c, head);
        c.ex = ex;
        ex.start();
      }
    } finally {
      c.parsing = false;
    }
  }

  /** An exchange ended (answered or failed) with the client connection still usable or not. */
  function afterExchange(c: Client, reuse: boolean): void {
    c.ex = null;
    if (!reuse || c.ended) {
      closeClient(c);
      return;
    }
    c.resume();
    c.headSince = c.buf ? Date.now() : 0;
    parseHeads(c);
  }

  /** One request on a client connection, and its machine connection. */
  class Exchange implements UpstreamOwner, ActiveExchange {
    phase = ACQUIRE;
    readonly requestId = newRequestId();
    readonly bodyless: boolean;
    app = '';
    lease: Lease | null = null;
    /** Machine of the latest attempt: a retry that needs another one excludes it. */
    lastMachine = '';
    /** A 1xx answer was relayed: the request can no longer be sent elsewhere. */
    interim = false;
    up: Upstream | null = null;
    upHead: Buffer = EMPTY;
    attempt = 0;
    exclude: Set<string> | undefined;
    lastFailure: string | undefined;
    since = 0;
    // Request body.
    reqLeft: number;
    reqChunks: ChunkedReader | null;
    reqDone: boolean;
    bodyStarted = false;
    streaming = false;
    // Response.
    resBuf: Buffer | null = null;
    resKeepAlive = false;
    mode = NONE;
    resLeft = 0;
    resChunks: ChunkedReader | null = null;
    decode = false;
    closeAfter = false;

    constructor(
      readonly c: Client,
      readonly head: RequestHead,
    ) {
      this.reqChunks = head.chunked ? new ChunkedReader(400) : null;
      this.reqLeft = head.contentLength > 0 ? head.contentLength : 0;
      this.bodyless = !head.chunked && this.reqLeft === 0;
      this.reqDone = this.bodyless || head.upgrade !== undefined;
      this.closeAfter = head.close || head.minor === 0;
    }

    start(): void {
      const c = this.c;
      const host = this.head.host;
      let app: string | undefined;
      if (host !== undefined && host === c.lastHost) app = c.lastApp;
      else {
        app = appFromHost(host, domain);
        c.lastHost = host;
        c.lastApp = app;
      }
      if (!app) {
        this.fail(404, `no app is served at host "${this.head.host ?? ''}": use http://<app>.${domain}:${listenPort}/`);
        return;
      }
      this.upHead = upstreamHead(this.head, { requestId: this.requestId, clientIp: c.ip, port: listenPort, connTail: c.connTail });
      this.acquire(app);
    }

    acquire(app: string): void {
      this.attempt++;
      this.phase = ACQUIRE;
      if (this.exclude === undefined) {
        // Most requests find a free machine at once: no promise, no tick.
        let lease: Lease | undefined;
        try {
          lease = pool.tryAcquire(app);
        } catch (err) {
          const { status, message } = errorStatus(err);
          this.fail(status, message);
          return;
        }
        if (lease) {
          this.onLease(lease, app);
          return;
        }
      }
      pool.acquire(app, this.exclude, this.exclude ? RETRY_WAIT_MS : Infinity).then(
        (lease) => this.onLease(lease, app),
        (err: unknown) => {
          if (this.phase === DONE) return;
          const { status, message } = errorStatus(err);
          // Having tried a machine already, its failure is the better answer.
          if (this.lastFailure && status === 503) this.fail(502, this.lastFailure);
          else this.fail(status, message);
        },
      );
    }

    onLease(lease: Lease, app: string): void {
      if (this.phase === DONE) {
        lease.release();
        return;
      }
      this.lease = lease;
      this.app = app;
      this.lastMachine = lease.machine.id;
      this.phase = CONNECT;
      this.since = Date.now();
      this.c.lastActive = this.since;
      // Upgrades get a connection of their own; it becomes the tunnel.
      const up = this.head.upgrade !== undefined ? upstreams.fresh(lease.port, this) : upstreams.get(lease.port, this);
      this.up = up;
      // Nothing is sent before the connection is up, so a refused
      // connection leaves the request (body included) for another machine.
      if (up.connected) this.send();
    }

    onUpConnect(): void {
      if (this.phase === CONNECT) this.send();
    }

    send(): void {
      const up = this.up!;
      const sock = up.sock;
      this.phase = WAIT;
      this.since = Date.now();
      const c = this.c;
      if (this.reqDone) {
        sock.write(this.upHead);
        return;
      }
      this.bodyStarted = true;
      this.streaming = true;
      const buf = c.buf;
      if (buf) {
        c.buf = null;
        c.scanned = 0;
        this.body(buf, this.upHead);
      } else sock.write(this.upHead);
      // Body bytes were held (reading paused past HOLD_BYTES) until now.
      if (this.streaming && !sock.writableNeedDrain) c.resume();
    }

    /** Request body bytes from the client (possibly followed by a pipelined request). */
    body(buf: Buffer, prefix?: Buffer): void {
      let used: number;
      try {
        if (this.reqChunks) used = this.reqChunks.feed(buf, 0, buf.length);
        else used = Math.min(this.reqLeft, buf.length);
      } catch (err) {
        if (!(err instanceof HttpError)) throw err;
        // Bytes before the bad framing went to the machine; that request is
        // cut, so no part of what follows can be read as another one.
        this.abortUp();
        if (this.phase === BODY) this.destroy();
        else if (prefix !== undefined) this.fail(400, `malformed HTTP request: ${err.message}`, true);
        else this.fail(400, `malformed HTTP request: ${err.message}`, true);
        return;
      }
      if (this.reqChunks === null) this.reqLeft -= used;
      const done = this.reqChunks ? this.reqChunks.done : this.reqLeft === 0;
      if (this.up && (used > 0 || prefix !== undefined)) {
        const data = used === buf.length ? buf : buf.subarray(0, used);
        if (!(prefix === undefined ? this.up.sock.write(data) : writeJoined(this.up.sock, prefix, data))) this.c.pause();
      }
      if (used < buf.length) {
        // The next (pipelined) request: held until this exchange is over.
        this.c.buf = buf.subarray(used);
        this.c.scanned = 0;
      }
      if (done) {
        this.reqDone = true;
        this.streaming = false;
        if (this.phase === DONE) return;
        if (this.resDone) this.finish();
      }
    }

    onUpDrain(): void {
      if (this.streaming || this.phase === TUNNEL) this.c.resume();
    }

    onClientDrain(): void {
      this.up?.sock.resume();
    }

    /** Returns whether `chunk` may still be referenced (queued for writing, or kept). */
    onUpData(chunk: Buffer): boolean {
      const c = this.c;
      c.lastActive = Date.now();
      switch (this.phase) {
        case BODY:
          this.resBody(chunk);
          break;
        case TUNNEL:
          if (!c.sock.write(chunk)) this.up?.sock.pause();
          break;
        case WAIT:
          this.resHead(chunk);
          break;
        default:
          this.abortUp();
      }
      return c.sock.writableLength > 0 || this.resBuf !== null;
    }

    resHead(chunk: Buffer): void {
      let buf = this.resBuf ? Buffer.concat([this.resBuf, chunk]) : chunk;
      const c = this.c;
      for (;;) {
        const end = headEnd(buf, this.resBuf ? this.resBuf.length : 0);
        if (end < 0) {
          if (buf.length > MAX_RESPONSE_HEAD) return this.badResponse('a response head larger than 64 KiB');
          this.resBuf = buf;
          return;
        }
        this.resBuf = null;
        let res: ResponseHead;
        try {
          res = parseResponseHead(buf, 0, end, scratchResponse);
        } catch (err) {
          if (err instanceof HttpError) return this.badResponse(err.message);
          throw err;
        }
        const rest = end === buf.length ? null : buf.subarray(end);
        if (res.status === 101) {
          if (this.head.upgrade === undefined) return this.badResponse('101 Switching Protocols without an Upgrade request');
          return this.tunnel(res, rest);
        }
        if (res.status < 200) {
          // Interim answers (100 Continue, 103) are passed on; the final one follows.
          if (this.head.minor === 1) c.sock.write(interimHead(res, undefined));
          this.interim = true;
          if (!rest) return;
          buf = rest;
          continue;
        }
        const m = this.head.method;
        if (m === 'HEAD' || res.status === 204 || res.status === 304) this.mode = NONE;
        else if (res.chunked) this.mode = CHUNKED;
        else if (res.transferEncoding || res.contentLength < 0) this.mode = CLOSE;
        else if (res.contentLength === 0) this.mode = NONE;
        else this.mode = LENGTH;
        // A declined upgrade is relayed and the connection then closed (the
        // client may already be sending the other protocol).
        if (this.mode === CLOSE || this.head.upgrade !== undefined) this.closeAfter = true;
        let framing = '';
        if (this.mode === CHUNKED) {
          if (this.head.minor === 0) {
            this.decode = true;
            this.closeAfter = true;
          } else framing = 'Transfer-Encoding: chunked\r\n';
        }
        if (this.mode === LENGTH) this.resLeft = res.contentLength;
        if (this.mode === CHUNKED) this.resChunks = new ChunkedReader(502);
        framing += this.closeAfter || c.ended ? 'Connection: close\r\n' : keepAliveHeader;
        this.phase = BODY;
        this.resKeepAlive = res.keepAlive;
        if (this.mode === LENGTH && rest !== null && rest.length <= this.resLeft) {
          // The usual case: head and (first part of the) body in one buffer.
          const ok = c.sock.write(downstreamHead(res, this.requestId, framing, rest));
          this.resLeft -= rest.length;
          if (!ok) this.up?.sock.pause();
          if (this.resLeft === 0) {
            this.resDone = true;
            if (this.reqDone) this.finish();
          }
          return;
        }
        const text = downstreamHead(res, this.requestId, framing);
        if (rest === null || this.mode === NONE) {
          c.sock.write(text);
          if (this.mode === NONE) {
            if (rest) this.tainted = true;
            this.resDone = true;
            if (this.reqDone) this.finish();
          }
          return;
        }
        this.resBody(rest, text);
        return;
      }
    }

    /** The machine connection cannot be reused (extra bytes, close framing). */
    tainted = false;
    resDone = false;

    resBody(buf: Buffer, prefix?: Buffer): void {
      const sock = this.c.sock;
      let ok = true;
      if (prefix !== undefined && (this.mode !== LENGTH && (this.mode !== CHUNKED || this.decode))) {
        sock.write(prefix);
        prefix = undefined;
      }
      switch (this.mode) {
        case LENGTH: {
          const n = Math.min(this.resLeft, buf.length);
          if (n < buf.length) this.tainted = true;
          const data = n === buf.length ? buf : buf.subarray(0, n);
          ok = prefix === undefined ? sock.write(data) : writeJoined(sock, prefix, data);
          this.resLeft -= n;
          if (this.resLeft === 0) this.resDone = true;
          break;
        }
        case CHUNKED: {
          let used: number;
          try {
            used = this.decode
              ? this.resChunks!.feed(buf, 0, buf.length, (d) => {
                  ok = sock.write(d) && ok;
                })
              : this.resChunks!.feed(buf, 0, buf.length);
          } catch (err) {
            if (prefix !== undefined) return this.badResponse((err as Error).message);
            // The client already has the status line: all that is left is to cut it.
            this.destroy();
            return;
          }
          if (!this.decode) {
            const data = used === buf.length ? buf : buf.subarray(0, used);
            if (prefix !== undefined) ok = writeJoined(sock, prefix, data);
            else if (used > 0) ok = sock.write(data);
          }
          if (used < buf.length) this.tainted = true;
          if (this.resChunks!.done) this.resDone = true;
          break;
        }
        case CLOSE:
          ok = sock.write(buf);
          break;
        default:
          this.tainted = true;
      }
      if (!ok) this.up?.sock.pause();
      if (this.resDone) {
        if (this.reqDone) this.finish();
        // Else the machine answered before the whole request body arrived:
        // keep forwarding it; finish() runs when it is complete.
      }
    }

    /** The exchange is complete: the machine connection goes back to the pool. */
    finish(): void {
      if (this.phase === DONE) return;
      this.phase = DONE;
      const up = this.up;
      this.up = null;
      if (up) {
        if (!this.tainted && this.resKeepAlive && this.mode !== CLOSE) {
          up.sock.resume();
          upstreams.put(up);
        } else up.destroy();
      }
      this.release();
      afterExchange(this.c, !this.closeAfter);
    }

    release(): void {
      const l = this.lease;
      this.lease = null;
      l?.release();
    }

    abortUp(): void {
      const up = this.up;
      this.up = null;
      up?.destroy();
    }

    /** Cuts both connections (a failure after the client got the status line). */
    destroy(): void {
      if (this.phase === DONE) return;
      this.phase = DONE;
      this.abortUp();
      this.release();
      this.c.sock.destroy();
    }

    /** Answers with an error before any of the machine's answer reached the client. */
    fail(status: number, message: string, forceClose = false): void {
      if (this.phase === DONE) return;
      this.phase = DONE;
      this.abortUp();
      this.release();
      const c = this.c;
      // The connection stays usable only if the request was fully read.
      const keep = !forceClose && this.reqDone && !this.bodyStarted && this.bodyless && !this.closeAfter && !c.ended && this.head.upgrade === undefined;
      const body = message.endsWith('\n') ? message : message + '\n';
      if (!c.sock.destroyed) c.sock.write(errorHead(status, body, this.requestId, !keep) + body);
      afterExchange(c, keep);
    }

    badResponse(why: string): void {
      const where = this.where();
      this.abortUp();
      this.fail(502, `${where} sent an invalid response: ${why}`);
    }

    where(): string {
      const l = this.lease;
      return l ? `machine ${l.machine.id} (port ${l.service.internal_port})` : 'the machine';
    }

    onUpEnd(): void {
      if (this.phase === BODY && this.mode === CLOSE) {
        this.resDone = true;
        this.tainted = true;
        if (this.reqDone) this.finish();
        else {
          this.closeAfter = true;
          this.finish();
        }
        return;
      }
      if (this.phase === TUNNEL) {
        // No half-open tunnels (as nginx): the FIN is passed on, then both close.
        this.c.sock.end(() => this.destroy());
        return;
      }
      this.upFailed('ECONNRESET', 'closed the connection');
    }

    onUpError(err: NodeJS.ErrnoException): void {
      this.upFailed(err.code ?? '', err.message);
    }

    onUpClose(): void {
      if (this.phase === TUNNEL) {
        if (!this.c.sock.writableEnded) this.c.sock.end(() => this.destroy());
        return;
      }
      this.upFailed('ECONNRESET', 'closed the connection');
    }

    upFailed(code: string, message: string): void {
      if (this.phase === DONE) return;
      const up = this.up;
      this.up = null;
      up?.destroy();
      if (this.phase === BODY || this.phase === TUNNEL) {
        // A machine dying mid-body must not leave the client waiting.
        this.destroy();
        return;
      }
      const lease = this.lease!;
      const where = this.where();
      const upgrade = this.head.upgrade !== undefined;
      if (NEVER_SENT.has(code)) {
        pool.suspect(lease);
        if (!this.bodyStarted) return this.retry(`${where} refused the connection (${code})`, false);
      }
      // A bodyless idempotent request the machine dropped without a byte of
      // answer is safe to send again. On a pooled connection that is the
      // keep-alive race (the machine closed it as we reused it): a fresh
      // connection to the same machine is fine.
      if (!upgrade && RESET.has(code) && this.bodyless && IDEMPOTENT.has(this.head.method) && this.resBuf === null && !this.interim) {
        return this.retry(`${where} closed the connection without answering (${code})`, up?.reused ?? false);
      }
      this.fail(502, upgrade ? `${where} failed before completing the upgrade: ${code || message}` : `${where} failed before answering: ${code || message}`);
    }

    retry(reason: string, sameMachineOk: boolean): void {
      this.release();
      this.lastFailure = reason;
      if (this.attempt >= MAX_ATTEMPTS) return this.fail(502, reason);
      if (!sameMachineOk) (this.exclude ??= new Set()).add(this.lastMachine);
      this.acquire(this.app);
    }

    tunnel(res: ResponseHead, rest: Buffer | null): void {
      const c = this.c;
      const up = this.up!;
      this.phase = TUNNEL;
      // Websockets are often quiet for long stretches; only a close ends them.
      c.sock.cork();
      c.sock.write(interimHead(res, this.requestId));
      if (rest) c.sock.write(rest);
      c.sock.uncork();
      if (c.buf) {
        up.sock.write(c.buf);
        c.buf = null;
      }
      c.resume();
    }

    /** Client bytes while this exchange runs. */
    onClientData(chunk: Buffer): void {
      if (this.phase === TUNNEL) {
        if (!this.up?.sock.write(chunk)) this.c.pause();
        return;
      }
      if (this.streaming) {
        this.body(chunk);
        return;
      }
      // Not forwarding yet (or a pipelined request): hold, within limits.
      const c = this.c;
      c.buf = c.buf ? Buffer.concat([c.buf, chunk]) : chunk;
      if (c.buf.length > HOLD_BYTES) c.pause();
    }

    /** The client sent FIN. */
    onClientEnd(): void {
      if (this.phase === TUNNEL) {
        this.up?.sock.end(() => this.destroy());
        return;
      }
      // A request body cut short cannot be answered.
      if (!this.reqDone) this.destroy();
    }

    /** The client connection closed: abandon the machine request. */
    onClientClose(): void {
      if (this.phase === DONE) return;
      this.phase = DONE;
      this.abortUp();
      this.release();
    }

    /** Timeouts, from the sweep. */
    check(now: number): void {
      if (this.phase === WAIT || this.phase === CONNECT) {
        if (now - this.since > responseTimeoutMs) {
          this.abortUp();
          this.fail(504, `${this.where()} sent no response within ${responseTimeoutMs / 1000}s`);
          return;
        }
        // Waiting on the machine with the request complete is not idleness.
        if (this.reqDone) return;
      }
      if (this.phase === ACQUIRE || this.phase === TUNNEL) return;
      if (now - this.c.lastActive > idleTimeoutMs) this.destroy();
    }
  }

  const server = createServer({ allowHalfOpen: true, noDelay: true }, (sock: Socket) => {
    const c = new Client(sock, listenPort);
    clients.add(c);
    c.headSince = c.lastActive;
    sock.on('data', (chunk: Buffer) => {
      c.lastActive = Date.now();
      if (c.closing) return;
      c.fresh = false;
      if (c.ex) {
        c.ex.onClientData(chunk);
        return;
      }
      if (c.headSince === 0) c.headSince = c.lastActive;
      c.buf = c.buf ? Buffer.concat([c.buf, chunk]) : chunk;
      parseHeads(c);
    });
    sock.on('drain', () => c.ex?.onClientDrain());
    sock.on('end', () => {
      c.ended = true;
      if (c.closing) sock.destroy();
      else if (c.ex) c.ex.onClientEnd();
      else sock.end();
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      clients.delete(c);
      c.ex?.onClientClose();
      c.ex = null;
    });
  });

  // One timer for every timeout: header, idle, keep-alive, response.
  const tick = Math.max(10, Math.min(1_000, Math.floor(Math.min(headersTimeoutMs, idleTimeoutMs, keepAliveTimeoutMs, responseTimeoutMs) / 4)));
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const c of clients) {
      if (c.closing) {
        if (now - c.closing > LINGER_MS) c.sock.destroy();
        continue;
      }
      if (c.ex) {
        c.ex.check(now);
        continue;
      }
      if (c.headSince !== 0) {
        if (now - c.headSince > headersTimeoutMs) {
          if (c.fresh) c.sock.destroy();
          else reject(c, 408, `the request headers did not arrive within ${headersTimeoutMs / 1000}s`);
        }
      } else if (now - c.lastActive > keepAliveTimeoutMs) c.sock.destroy();
    }
    upstreams.sweep(now);
  }, tick);
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
          listenPort = (server.address() as AddressInfo).port;
          resolve(listenPort);
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
