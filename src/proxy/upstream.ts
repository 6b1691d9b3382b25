import { connect, type Socket } from 'node:net';
import { clock } from './clock.js';
import { Conn, type ConnSink } from './sockio.js';

/** Read buffer per machine connection (responses are what is large). */
const READ_BUFFER = 16 * 1024;

/** What an exchange hears from the machine connection it currently owns. */
export interface UpstreamOwner {
  onUpConnect(): void;
  /** Returns true when it keeps a reference to `chunk` (then the read buffer is not reused). */
  onUpData(chunk: Buffer): boolean;
  onUpEnd(): void;
  onUpError(err: NodeJS.ErrnoException): void;
  onUpClose(): void;
  onUpDrain(): void;
}

/**
 * One connection to a machine port. Its listeners are attached once and
 * forward to whichever exchange owns it now; an idle pooled connection
 * that hears anything from the machine (data, FIN) is dropped.
 */
export class Upstream implements ConnSink {
  owner: UpstreamOwner | null = null;
  /** Served a request before: a failure without an answer may be the keep-alive race. */
  reused = false;
  connected = false;
  idleSince = 0;
  readonly sock: Socket;
  /** Reads and writes (sockio.ts); `sock` for the rest. */
  readonly conn: Conn;

  constructor(
    readonly port: number,
    pool: UpstreamPool,
  ) {
    const sock = connect({ host: '127.0.0.1', port, noDelay: true });
    this.sock = sock;
    this.conn = new Conn(sock, this, READ_BUFFER);
    sock.on('connect', () => {
      this.connected = true;
      this.conn.start();
      this.owner?.onUpConnect();
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      const o = this.owner;
      this.owner = null;
      o?.onUpError(err);
    });
    sock.on('close', () => {
      pool.forget(this);
      const o = this.owner;
      this.owner = null;
      o?.onUpClose();
    });
  }

  onData(chunk: Buffer): boolean {
    const o = this.owner;
    if (!o) {
      this.sock.destroy();
      return false;
    }
    return o.onUpData(chunk);
  }

  onEnd(): void {
    if (this.owner) this.owner.onUpEnd();
    else this.sock.destroy();
  }

  onDrain(): void {
    this.owner?.onUpDrain();
  }

  /** Detaches the owner and closes the connection. */
  destroy(): void {
    this.owner = null;
    this.sock.destroy();
  }
}

/** Keep-alive connections per machine port, most recently used first. */
export class UpstreamPool {
  private readonly idle = new Map<number, Upstream[]>();
  private readonly all = new Set<Upstream>();

  constructor(
    private readonly maxIdlePerPort: number,
    private readonly idleMs: number,
  ) {}

  /** An idle pooled connection, or a new one (connecting). */
  get(port: number, owner: UpstreamOwner): Upstream {
    const stack = this.idle.get(port);
    if (stack) {
      while (stack.length > 0) {
        const u = stack.pop()!;
        if (u.sock.destroyed || !u.sock.writable) continue;
        u.owner = owner;
        return u;
      }
    }
    return this.fresh(port, owner);
  }

  /** A new connection that is never shared (upgrades). */
  fresh(port: number, owner: UpstreamOwner): Upstream {
    const u = new Upstream(port, this);
    u.owner = owner;
    this.all.add(u);
    return u;
  }

  /** Back to the pool after a complete exchange. */
  put(u: Upstream): void {
    u.owner = null;
    u.reused = true;
    u.idleSince = clock.now;
    let stack = this.idle.get(u.port);
    if (!stack) {
      stack = [];
      this.idle.set(u.port, stack);
    }
    if (stack.length >= this.maxIdlePerPort) {
      u.destroy();
      return;
    }
    stack.push(u);
  }

  forget(u: Upstream): void {
    this.all.delete(u);
    const stack = this.idle.get(u.port);
    if (!stack) return;
    const i = stack.indexOf(u);
    if (i >= 0) stack.splice(i, 1);
    if (stack.length === 0) this.idle.delete(u.port);
  }

  /**
   * Closes connections idle for longer than idleMs: a machine's server
   * closes idle ones itself after a while (Node: 5 s), and reusing one at
   * that moment costs a retry.
   */
  sweep(now: number): void {
    for (const stack of this.idle.values()) {
      // Oldest at the bottom of the stack.
      while (stack.length > 0 && now - stack[0]!.idleSince > this.idleMs) stack.shift()!.destroy();
    }
  }

  close(): void {
    for (const u of this.all) u.destroy();
    this.all.clear();
    this.idle.clear();
  }
}
