import { CONNECTION_CLOSE, errorAnswer, errorStatus, failedBeforeAnswer, invalidResponse, noAppAt, noResponse } from './answers.js';
import { afterExchange, type ActiveExchange, type Client } from './client.js';
import { requestBody, responseBody, responseHead } from './forward.js';
import { nextRequestId, requestIdString, upstreamHead } from './headers.js';
import { appFromHost } from './host.js';
import { clock, tick } from './clock.js';
import { ChunkedReader, type RequestHead, type ResponseHead } from './http1.js';
import type { Lease } from './pool.js';
import { ACQUIRE, BODY, CLOSE, CONNECT, DONE, NONE, TUNNEL, WAIT } from './state.js';
import { openTunnel, tunnelClientEnded, tunnelFromClient, tunnelFromMachine, tunnelMachineClosed, tunnelMachineEnded } from './tunnel.js';
import type { Upstream, UpstreamOwner } from './upstream.js';

/*
 * One request on a client connection, from machine choice to the end:
 * connecting, retries on another machine, failures and their answers,
 * timeouts, and the hand-over to a tunnel on 101 (tunnel.ts). The bytes
 * themselves (bodies, the response head) go through forward.ts. One object
 * per request, driven by the client connection (client.ts) and the machine
 * connection (upstream.ts) it currently owns.
 */

/** Connection-level failures where the machine never saw the request. */
const NEVER_SENT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const RESET = new Set(['ECONNRESET', 'EPIPE']);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS']);
const MAX_ATTEMPTS = 3;
/** A retry takes another machine that is ready now, or gives up. */
const RETRY_WAIT_MS = 0;
/** Client bytes held while a request waits for its machine (then reading pauses). */
const HOLD_BYTES = 64 * 1024;

const EMPTY = Buffer.alloc(0);

/** One request on a client connection, and its machine connection. */
export class Exchange implements UpstreamOwner, ActiveExchange {
  phase = ACQUIRE;
  /** The request id's number (headers.ts writes it as bytes); requestId is its string. */
  readonly idNumber = nextRequestId();
  private idString: string | undefined;
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
  /** The machine connection cannot be reused (extra bytes, close framing). */
  tainted = false;
  resDone = false;

  get requestId(): string {
    return (this.idString ??= requestIdString(this.idNumber));
  }

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
    const ctx = c.ctx;
    const host = this.head.host;
    let app: string | undefined;
    if (host !== undefined && host === c.lastHost) app = c.lastApp;
    else {
      app = appFromHost(host, ctx.domain);
      c.lastHost = host;
      c.lastApp = app;
    }
    if (!app) {
      this.fail(404, noAppAt(this.head.host, ctx.domain, ctx.port));
      return;
    }
    this.upHead = upstreamHead(this.head, { requestId: this.idNumber, clientIp: c.ip, port: ctx.port, connTail: c.connTail, connBytes: c.connBytes });
    this.acquire(app);
  }

  acquire(app: string): void {
    this.attempt++;
    this.phase = ACQUIRE;
    const ctx = this.c.ctx;
    if (this.exclude === undefined) {
      // Most requests find a free machine at once: no promise, no tick.
      let lease: Lease | undefined;
      try {
        lease = ctx.pool.tryAcquire(app);
      } catch (err) {
        const { status, message } = errorStatus(err, ctx.log);
        this.fail(status, message);
        return;
      }
      if (lease) {
        this.onLease(lease, app);
        return;
      }
    }
    ctx.pool.acquire(app, this.exclude, this.exclude ? RETRY_WAIT_MS : Infinity).then(
      (lease) => {
        tick();
        this.onLease(lease, app);
      },
      (err: unknown) => {
        tick();
        if (this.phase === DONE) return;
        const { status, message } = errorStatus(err, ctx.log);
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
    this.since = clock.now;
    this.c.lastActive = this.since;
    // Upgrades get a connection of their own; it becomes the tunnel.
    const upstreams = this.c.ctx.upstreams;
    const up = this.head.upgrade !== undefined ? upstreams.fresh(lease.port, this) : upstreams.get(lease.port, this);
    this.up = up;
    // Nothing is sent before the connection is up, so a refused
    // connection leaves the request (body included) for another machine.
    if (up.connected) this.send();
  }

  onUpConnect(): void {
    tick();
    if (this.phase === CONNECT) this.send();
  }

  send(): void {
    const up = this.up!;
    const conn = up.conn;
    this.phase = WAIT;
    this.since = clock.now;
    const c = this.c;
    if (this.reqDone) {
      conn.write(this.upHead);
      return;
    }
    this.bodyStarted = true;
    this.streaming = true;
    const buf = c.buf;
    if (buf) {
      c.buf = null;
      c.scanned = 0;
      requestBody(this, buf, this.upHead);
    } else conn.write(this.upHead);
    // Body bytes were held (reading paused past HOLD_BYTES) until now.
    if (this.streaming && !conn.needDrain) c.resume();
  }

  onUpDrain(): void {
    if (this.streaming || this.phase === TUNNEL) this.c.resume();
  }

  onClientDrain(): void {
    this.up?.conn.resume();
  }

  /** Returns whether `chunk` is kept (a partial response head); writes still queued are tracked by sockio. */
  onUpData(chunk: Buffer): boolean {
    const c = this.c;
    c.lastActive = tick();
    switch (this.phase) {
      case BODY:
        responseBody(this, chunk);
        break;
      case TUNNEL:
        tunnelFromMachine(this, chunk);
        break;
      case WAIT:
        responseHead(this, chunk);
        break;
      default:
        this.abortUp();
    }
    return this.resBuf !== null;
  }

  /** The exchange is complete: the machine connection goes back to the pool. */
  finish(): void {
    if (this.phase === DONE) return;
    this.phase = DONE;
    const up = this.up;
    this.up = null;
    if (up) {
      if (!this.tainted && this.resKeepAlive && this.mode !== CLOSE) {
        up.conn.resume();
        this.c.ctx.upstreams.put(up);
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
    if (!c.sock.destroyed) c.conn.write(Buffer.from(errorAnswer(status, message, this.requestId, keep ? c.ctx.keepAliveHeader : CONNECTION_CLOSE)));
    afterExchange(c, keep);
  }

  badResponse(why: string): void {
    const where = this.where();
    this.abortUp();
    this.fail(502, invalidResponse(where, why));
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
      tunnelMachineEnded(this);
      return;
    }
    this.upFailed('ECONNRESET', 'closed the connection');
  }

  onUpError(err: NodeJS.ErrnoException): void {
    this.upFailed(err.code ?? '', err.message);
  }

  onUpClose(): void {
    if (this.phase === TUNNEL) {
      tunnelMachineClosed(this);
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
      this.c.ctx.pool.suspect(lease);
      if (!this.bodyStarted) return this.retry(`${where} refused the connection (${code})`, false);
    }
    // A bodyless idempotent request the machine dropped without a byte of
    // answer is safe to send again. On a pooled connection that is the
    // keep-alive race (the machine closed it as we reused it): a fresh
    // connection to the same machine is fine.
    if (!upgrade && RESET.has(code) && this.bodyless && IDEMPOTENT.has(this.head.method) && this.resBuf === null && !this.interim) {
      return this.retry(`${where} closed the connection without answering (${code})`, up?.reused ?? false);
    }
    this.fail(502, failedBeforeAnswer(where, upgrade, code || message));
  }

  retry(reason: string, sameMachineOk: boolean): void {
    this.release();
    this.lastFailure = reason;
    if (this.attempt >= MAX_ATTEMPTS) return this.fail(502, reason);
    if (!sameMachineOk) (this.exclude ??= new Set()).add(this.lastMachine);
    this.acquire(this.app);
  }

  tunnel(res: ResponseHead, rest: Buffer | null): void {
    this.phase = TUNNEL;
    openTunnel(this, res, rest);
  }

  /** Client bytes while this exchange runs. */
  onClientData(chunk: Buffer): void {
    if (this.phase === TUNNEL) {
      tunnelFromClient(this, chunk);
      return;
    }
    if (this.streaming) {
      requestBody(this, chunk);
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
      tunnelClientEnded(this);
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
    const ctx = this.c.ctx;
    if (this.phase === WAIT || this.phase === CONNECT) {
      if (now - this.since > ctx.responseTimeoutMs) {
        this.abortUp();
        this.fail(504, noResponse(this.where(), ctx.responseTimeoutMs));
        return;
      }
      // Waiting on the machine with the request complete is not idleness.
      if (this.reqDone) return;
    }
    if (this.phase === ACQUIRE || this.phase === TUNNEL) return;
    if (now - this.c.lastActive > ctx.idleTimeoutMs) this.destroy();
  }
}
