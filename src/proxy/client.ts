import type { Socket } from 'node:net';
import { CONNECTION_CLOSE, errorAnswer, headersTimedOut, headersTooLarge, malformedRequest } from './answers.js';
import type { ProxyContext } from './context.js';
import { connectionBytes, connectionTail, type ConnectionBytes } from './headers.js';
import { HttpError, headEnd, parseRequestHead, skipEmptyLines, type RequestHead } from './http1.js';
import { clock, tick } from './clock.js';
import { Conn, type ConnSink } from './sockio.js';

/**
 * Read buffer per client connection (nginx reads heads into 1 KiB, bodies
 * into 8-16 KiB). A keep-alive client idle for releaseIdleBufferMs gives its
 * buffer back until its next request (sockio.ts releaseBuffer).
 */
const CLIENT_READ_BUFFER = 8 * 1024;

/** A connection we are closing gets this long to finish. */
const LINGER_MS = 5_000;

/** What a client connection hears about the exchange running on it. */
export interface ActiveExchange {
  start(): void;
  /** Bytes it keeps are held in `Client.buf` (the read buffer is reused otherwise). */
  onClientData(chunk: Buffer): void;
  onClientDrain(): void;
  onClientEnd(): void;
  onClientClose(): void;
  check(now: number): void;
}

/** One client connection. */
export class Client implements ConnSink {
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
  /** The same, and the other constant added headers, as bytes. */
  readonly connBytes: ConnectionBytes;
  /** Last Host → app on this connection (clients repeat their Host). */
  lastHost: string | undefined = undefined;
  lastApp: string | undefined = undefined;

  /** Reads and writes (sockio.ts); `sock` for the rest (end, destroy, events). */
  readonly conn: Conn;

  constructor(
    readonly sock: Socket,
    readonly ctx: ProxyContext,
  ) {
    this.ip = sock.remoteAddress ?? '';
    this.connTail = connectionTail(this.ip, ctx.port);
    this.connBytes = connectionBytes(this.ip, ctx.port);
    this.lastActive = Date.now();
    this.conn = new Conn(sock, this, CLIENT_READ_BUFFER);
  }

  pause(): void {
    if (!this.paused) {
      this.paused = true;
      this.conn.pause();
    }
  }

  resume(): void {
    if (this.paused) {
      this.paused = false;
      this.conn.resume();
    }
  }

  onData(chunk: Buffer): boolean {
    this.lastActive = tick();
    if (this.closing) return false;
    this.fresh = false;
    if (this.ex) {
      this.ex.onClientData(chunk);
      return this.buf !== null;
    }
    if (this.headSince === 0) this.headSince = this.lastActive;
    this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    parseHeads(this);
    // Unparsed or pipelined bytes may be a view of the read buffer.
    return this.buf !== null;
  }

  onEnd(): void {
    this.ended = true;
    if (this.closing) this.sock.destroy();
    else if (this.ex) this.ex.onClientEnd();
    else this.sock.end();
  }

  onDrain(): void {
    this.ex?.onClientDrain();
  }
}

/** Serves a new client connection; `clients` holds it until it closes. */
export function acceptClient(ctx: ProxyContext, clients: Set<Client>, sock: Socket): void {
  const c = new Client(sock, ctx);
  clients.add(c);
  c.headSince = c.lastActive;
  sock.on('error', () => sock.destroy());
  sock.on('close', () => {
    clients.delete(c);
    c.ex?.onClientClose();
    c.ex = null;
  });
  // Accepted with pauseOnConnect: reading starts once the listeners are on.
  c.conn.start();
}

/** Client-side timeouts (from the proxy's one sweep timer): linger, headers, keep-alive, and the exchange's own. */
export function checkClient(c: Client, now: number): void {
  if (c.closing) {
    if (now - c.closing > LINGER_MS) c.sock.destroy();
    return;
  }
  if (c.ex) {
    c.ex.check(now);
    return;
  }
  const ctx = c.ctx;
  if (c.headSince !== 0) {
    if (now - c.headSince > ctx.headersTimeoutMs) {
      if (c.fresh) c.sock.destroy();
      else reject(c, 408, headersTimedOut(ctx.headersTimeoutMs));
    }
  } else if (now - c.lastActive > ctx.keepAliveTimeoutMs) c.sock.destroy();
  else if (c.buf === null && now - c.lastActive > ctx.releaseIdleBufferMs) c.conn.releaseBuffer();
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

/** Answers without a machine (parse errors, 408, 431) and closes. */
function reject(c: Client, status: number, message: string): void {
  c.conn.write(Buffer.from(errorAnswer(status, message, undefined, CONNECTION_CLOSE)));
  closeClient(c);
}

/** Reads request heads from the client's buffer and starts exchanges. */
function parseHeads(c: Client): void {
  if (c.parsing) return;
  c.parsing = true;
  const ctx = c.ctx;
  const maxHeaderSize = ctx.maxHeaderSize;
  try {
    while (c.ex === null && c.closing === 0 && c.buf !== null) {
      const buf = c.buf;
      const skip = skipEmptyLines(buf);
      const end = headEnd(buf, Math.max(c.scanned, skip));
      if (end < 0) {
        if (buf.length - skip > maxHeaderSize) return reject(c, 431, headersTooLarge(maxHeaderSize));
        c.scanned = buf.length;
        if (skip === buf.length) {
          c.buf = null;
          c.scanned = 0;
        }
        return;
      }
      if (end - skip > maxHeaderSize) return reject(c, 431, headersTooLarge(maxHeaderSize));
      let head: RequestHead;
      try {
        head = parseRequestHead(buf, skip, end);
      } catch (err) {
        if (err instanceof HttpError) return reject(c, err.status, malformedRequest(err.message));
        throw err;
      }
      c.buf = end === buf.length ? null : buf.subarray(end);
      c.scanned = 0;
      c.headSince = 0;
      const ex = ctx.exchange(c, head);
      c.ex = ex;
      ex.start();
    }
  } finally {
    c.parsing = false;
  }
}

/** An exchange ended (answered or failed) with the client connection still usable or not. */
export function afterExchange(c: Client, reuse: boolean): void {
  c.ex = null;
  if (!reuse || c.ended) {
    closeClient(c);
    return;
  }
  c.resume();
  c.headSince = c.buf ? clock.now : 0;
  parseHeads(c);
}
