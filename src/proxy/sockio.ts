import type { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';

/*
 * Socket I/O for the proxy's data path, one level below net.Socket's
 * Readable/Writable streams.
 *
 * Why: with the parsing done at byte level, what a proxied request cost
 * was mostly Node's stream layer around its 2 reads and 2 writes: per read
 * a fresh 64 KiB buffer shrunk to size, a Buffer, push() and a 'data'
 * event; per write the Writable's state, a WriteWrap and an after-write
 * tick. Here a read lands in a buffer reused across reads and reaches the
 * proxy through one call; a write goes straight to the handle, and only a
 * write the kernel could not take at once is tracked until it completes.
 *
 * How: the socket's libuv handle (`socket._handle`: `readStart`,
 * `readStop`, `useUserBuffer`, `onread`, `writeBuffer`, `writeQueueSize`)
 * and `process.binding('stream_wrap')` (`WriteWrap`, `streamBaseState`).
 * They are Node internals, but the ones net.js itself is built on, unchanged
 * from Node 12 to 22. Everything internal is in this file, checked once at
 * load and per socket; when anything is missing, Conn falls back to the
 * public stream API ('data', write(), 'drain') with the same behaviour.
 *
 * The socket stays a normal net.Socket for everything else: 'error' and
 * 'close' events, end() (a shutdown queued behind our writes: libuv keeps
 * one write queue per handle), destroy(), addresses. A read error destroys
 * it with the error, as net.js does; at end of input the Readable side is
 * ended too, so net's own auto-destroy after both directions end still works.
 */

/** What a connection's owner hears. */
export interface ConnSink {
  /**
   * Bytes read. `chunk` may be a view of a buffer reused for the next read:
   * return true when a reference to it is kept (then a new buffer is taken).
   */
  onData(chunk: Buffer): boolean;
  /** The peer sent FIN. */
  onEnd(): void;
  /** Writes the kernel could not take at once have all completed (after write() returned false). */
  onDrain(): void;
}

interface WriteReq {
  handle: RawHandle;
  oncomplete: (this: WriteReq, status: number) => void;
  async: boolean;
  buffer: Buffer | null;
  conn: Conn | null;
}

interface RawHandle {
  reading: boolean;
  onread: (arrayBuffer?: ArrayBuffer) => Buffer | undefined;
  readonly writeQueueSize: number;
  readStart(): number;
  readStop(): number;
  useUserBuffer(buf: Uint8Array): void;
  writeBuffer(req: WriteReq, buf: Uint8Array): number;
}

interface StreamWrap {
  WriteWrap: new () => WriteReq;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
}

const UV_EOF = -4095;
/** As net.Socket's default writableHighWaterMark. */
const HIGH_WATER = 16 * 1024;

function loadStreamWrap(): StreamWrap | null {
  if (process.env.HANGAR_PROXY_STREAM_IO === '1') return null;
  try {
    const b = (process as unknown as { binding(name: string): Partial<StreamWrap> }).binding('stream_wrap');
    if (
      typeof b.WriteWrap === 'function' &&
      b.streamBaseState instanceof Int32Array &&
      typeof b.kReadBytesOrError === 'number' &&
      typeof b.kLastWriteWasAsync === 'number'
    ) {
      return b as StreamWrap;
    }
  } catch {
    // Not available (a future Node): the stream API below.
  }
  return null;
}

const wrap = loadStreamWrap();
const state = wrap ? wrap.streamBaseState : new Int32Array(4);
const K_READ = wrap ? wrap.kReadBytesOrError : 0;
const K_ASYNC = wrap ? wrap.kLastWriteWasAsync : 0;
let enabled = wrap !== null;

/** Test hook: new connections use the public stream API (false), or the raw path where available (true). */
export function useRawIo(on: boolean): void {
  enabled = on && wrap !== null;
}

/** Whether new connections use the raw handle path. */
export function rawIoEnabled(): boolean {
  return enabled;
}

function rawHandleOf(sock: Socket): RawHandle | null {
  if (!enabled) return null;
  const h = (sock as unknown as { _handle?: Partial<RawHandle> | null })._handle;
  if (
    h &&
    typeof h.readStart === 'function' &&
    typeof h.readStop === 'function' &&
    typeof h.useUserBuffer === 'function' &&
    typeof h.writeBuffer === 'function' &&
    'onread' in h &&
    'writeQueueSize' in h
  ) {
    return h as RawHandle;
  }
  return null;
}

/**
 * Read buffers still referenced by a write the kernel has not taken yet
 * (count of such writes): such a buffer is not reused for the next read.
 */
const inFlight = new WeakMap<ArrayBufferLike, number>();
/** Writes pending in all connections: 0 nearly always, and then reads skip the lookup. */
let asyncTotal = 0;

/**
 * Read buffers for idle connections, one per size, shared: a read into one
 * is copied into a buffer of the connection's own before anything else
 * runs (reads are delivered one at a time), so no two connections ever
 * hold data in it at once.
 */
const idleBuffers = new Map<number, Buffer>();
/** Buffers given back so far (tests). */
let released = 0;
export function releasedBufferCount(): number {
  return released;
}
function idleBuffer(size: number): Buffer {
  let b = idleBuffers.get(size);
  if (b === undefined) idleBuffers.set(size, (b = Buffer.allocUnsafe(size)));
  return b;
}

function afterAsyncWrite(this: WriteReq, status: number): void {
  const conn = this.conn!;
  const buf = this.buffer!;
  this.buffer = null;
  this.conn = null;
  asyncTotal--;
  const n = inFlight.get(buf.buffer)! - 1;
  if (n === 0) inFlight.delete(buf.buffer);
  else inFlight.set(buf.buffer, n);
  conn.writeDone(status);
}

function errnoError(err: number, syscall: string): NodeJS.ErrnoException {
  let code: string;
  try {
    code = getSystemErrorName(err);
  } catch {
    code = `E${-err}`;
  }
  const e: NodeJS.ErrnoException = new Error(`${syscall} ${code}`);
  e.code = code;
  e.errno = err;
  e.syscall = syscall;
  return e;
}

/** A socket's reads and writes for the proxy (raw handle, or the stream API as fallback). */
export class Conn {
  private raw: RawHandle | null = null;
  private rbuf: Buffer | null = null;
  /** A WriteWrap not yet tied to a pending write: reused while writes complete at once. */
  private req: WriteReq | null = null;
  private asyncWrites = 0;
  private wantDrain = false;
  private paused = false;
  private started = false;
  private eof = false;
  /** Reading into the shared idle buffer (releaseBuffer). */
  private idle = false;

  /**
   * `readBufferSize`: a connection holds one read buffer while it is in use
   * (until releaseBuffer), so its size is memory per connection against
   * reads per large body.
   */
  constructor(
    readonly sock: Socket,
    private readonly sink: ConnSink,
    private readonly readBufferSize: number,
  ) {}

  /** Starts reading: a socket accepted with pauseOnConnect, or a connected one ('connect'). */
  start(): void {
    if (this.started) return;
    this.started = true;
    const sock = this.sock;
    const h = rawHandleOf(sock);
    if (h === null) {
      sock.on('data', (chunk: Buffer) => this.sink.onData(chunk));
      sock.on('end', () => this.sink.onEnd());
      sock.on('drain', () => this.sink.onDrain());
      if (this.paused) sock.pause();
      else sock.resume();
      return;
    }
    this.raw = h;
    this.rbuf = Buffer.allocUnsafe(this.readBufferSize);
    h.useUserBuffer(this.rbuf);
    h.onread = () => this.onRead();
    // net's own _read() starts reading only when `reading` is false: set,
    // it leaves the handle to us (the read(0) after 'connect' is a no-op).
    h.reading = true;
    if (!this.paused) this.check(h.readStart(), 'read');
  }

  /** Destroyed (net.Socket drops its handle at once; cheaper than the `destroyed` getter per read and write). */
  private gone(): boolean {
    return (this.sock as unknown as { _handle: unknown })._handle !== this.raw;
  }

  /**
   * Give the read buffer back while the connection idles (a keep-alive
   * client between requests): reads land in a shared buffer until data
   * comes, which is then copied into a new one of its own. Memory per idle
   * connection is then the socket's, not another readBufferSize. Not while
   * a write still sends bytes of the buffer.
   */
  releaseBuffer(): void {
    const h = this.raw;
    const own = this.rbuf;
    if (h === null || own === null || this.idle || this.gone()) return;
    if (asyncTotal !== 0 && inFlight.has(own.buffer)) return;
    this.idle = true;
    released++;
    this.rbuf = idleBuffer(this.readBufferSize);
    h.useUserBuffer(this.rbuf);
  }

  private onRead(): Buffer | undefined {
    const n = state[K_READ]!;
    if (n > 0) {
      // The buffer to read into next, when it is not the one just read into.
      let next: Buffer | undefined;
      if (this.idle) {
        // First bytes after idling: out of the shared buffer at once.
        this.idle = false;
        next = Buffer.allocUnsafe(this.readBufferSize);
        this.rbuf!.copy(next, 0, 0, n);
        this.rbuf = next;
      }
      const buf = this.rbuf!;
      if (this.gone()) return next;
      const kept = this.sink.onData(buf.subarray(0, n));
      if (kept || (asyncTotal !== 0 && inFlight.has(buf.buffer))) {
        this.rbuf = next = Buffer.allocUnsafe(this.readBufferSize);
      }
      return next;
    }
    if (n === 0) return undefined;
    if (n !== UV_EOF) {
      this.sock.destroy(errnoError(n, 'read'));
      return undefined;
    }
    // libuv stopped reading at EOF; `reading` stays set so net does not restart it.
    this.eof = true;
    this.sink.onEnd();
    const sock = this.sock;
    if (!sock.destroyed && !sock.readableEnded) {
      sock.push(null);
      sock.read(0);
    }
    return undefined;
  }

  private check(err: number, syscall: string): void {
    if (err !== 0 && !this.sock.destroyed) this.sock.destroy(errnoError(err, syscall));
  }

  /** Queues `buf`; false when the caller should wait for onDrain before writing more. */
  write(buf: Buffer): boolean {
    const h = this.raw;
    if (h === null) return this.sock.write(buf);
    if (this.gone()) return false;
    let req = this.req;
    if (req === null) {
      req = new wrap!.WriteWrap();
      req.handle = h;
      req.oncomplete = afterAsyncWrite;
      req.async = false;
      req.buffer = null;
      req.conn = null;
    }
    const err = h.writeBuffer(req, buf);
    if (err !== 0) {
      this.req = req;
      this.check(err, 'write');
      return false;
    }
    if (state[K_ASYNC] === 0) {
      this.req = req;
      return this.asyncWrites === 0 || h.writeQueueSize < HIGH_WATER;
    }
    // The kernel took part of it: libuv writes the rest when it can, and
    // `buf` (maybe a view of a read buffer) must stay untouched until then.
    this.req = null;
    req.async = true;
    req.buffer = buf;
    req.conn = this;
    inFlight.set(buf.buffer, (inFlight.get(buf.buffer) ?? 0) + 1);
    asyncTotal++;
    this.asyncWrites++;
    if (h.writeQueueSize < HIGH_WATER) return true;
    this.wantDrain = true;
    return false;
  }

  /** @internal from afterAsyncWrite. */
  writeDone(status: number): void {
    this.asyncWrites--;
    if (status < 0) {
      this.check(status, 'write');
      return;
    }
    if (this.asyncWrites === 0 && this.wantDrain) {
      this.wantDrain = false;
      if (!this.sock.destroyed) this.sink.onDrain();
    }
  }

  /** Bytes accepted by write() and not yet handed to the kernel. */
  get pending(): number {
    const h = this.raw;
    if (h === null) return this.sock.writableLength;
    return this.asyncWrites === 0 ? 0 : h.writeQueueSize;
  }

  /** A write returned false and onDrain has not come yet. */
  get needDrain(): boolean {
    return this.raw === null ? this.sock.writableNeedDrain : this.wantDrain;
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    if (!this.started) return;
    const h = this.raw;
    if (h === null) this.sock.pause();
    else if (!this.sock.destroyed && !this.eof) h.readStop();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (!this.started) return;
    const h = this.raw;
    if (h === null) this.sock.resume();
    else if (!this.sock.destroyed && !this.eof) this.check(h.readStart(), 'read');
  }
}
