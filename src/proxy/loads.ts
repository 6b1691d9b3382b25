/*
 * Per-machine load: requests in flight and the time of the last one.
 *
 * One proxy thread keeps them in plain objects (LocalLoad). With proxy
 * worker threads (workers.ts) every thread leases from the same counters,
 * kept in a SharedArrayBuffer (SharedLoad): taking a slot is a
 * compare-and-swap against the limit, so a hard_limit holds exactly however
 * many threads lease at once, and autostop closes a machine only when its
 * count is 0 (the same word, so no thread can slip a request in between).
 */

/** A count word with this bit set belongs to a machine being stopped: no new leases. */
export const CLOSED = 1 << 30;

export interface Load {
  /** Host port of the boot lastActive belongs to; a new boot resets the idle clock. */
  port: number | undefined;
  readonly inflight: number;
  lastActive: number;
  /** Takes a slot when fewer than `limit` are in flight and the machine is open. */
  take(limit: number): boolean;
  /** Gives a slot back at `now`. */
  give(now: number): void;
  /** Autostop: closes the machine to new leases when nothing is in flight. */
  close(): boolean;
}

export class LocalLoad implements Load {
  inflight = 0;
  private closed = false;

  constructor(
    public port: number | undefined,
    public lastActive: number,
  ) {}

  take(limit: number): boolean {
    if (this.closed || this.inflight >= limit) return false;
    this.inflight++;
    return true;
  }

  give(now: number): void {
    this.inflight--;
    this.lastActive = now;
  }

  close(): boolean {
    if (this.inflight !== 0) return false;
    this.closed = true;
    return true;
  }
}

/** Index in `LoadTable.ctrl`: nonzero while the main thread holds queued requests (releases must wake it). */
export const CTRL_WAITING = 0;

/** Machine slots in the shared table (a machine keeps its slot for the proxy's life). */
export const MAX_SHARED_MACHINES = 16_384;

/** The memory the threads share; plain data, posted to each worker. */
export interface SharedLoads {
  counts: SharedArrayBuffer;
  times: SharedArrayBuffer;
  ctrl: SharedArrayBuffer;
}

export function newSharedLoads(): SharedLoads {
  return {
    counts: new SharedArrayBuffer(4 * MAX_SHARED_MACHINES),
    times: new SharedArrayBuffer(8 * MAX_SHARED_MACHINES),
    ctrl: new SharedArrayBuffer(4 * 4),
  };
}

/** Takes a slot of `counts[slot]` below `limit` unless closed (any thread). */
export function takeSlot(counts: Int32Array, slot: number, limit: number): boolean {
  for (;;) {
    const w = Atomics.load(counts, slot);
    if ((w & CLOSED) !== 0 || w >= limit) return false;
    if (Atomics.compareExchange(counts, slot, w, w + 1) === w) return true;
  }
}

/** The shared counters seen from one thread. */
export class LoadTable {
  readonly counts: Int32Array;
  readonly times: Float64Array;
  readonly ctrl: Int32Array;
  /** Machine id → slot (main thread only: it hands slots out). */
  private readonly slots = new Map<string, number>();

  constructor(readonly shared: SharedLoads) {
    this.counts = new Int32Array(shared.counts);
    this.times = new Float64Array(shared.times);
    this.ctrl = new Int32Array(shared.ctrl);
  }

  /**
   * The load of machine `id` (main thread). A new Load for a known id
   * comes after a stop (the pool forgets a stopped machine): the slot was
   * closed with nothing in flight, and opens again.
   */
  load(id: string, port: number | undefined, now: number): Load | undefined {
    let slot = this.slots.get(id);
    if (slot === undefined) {
      if (this.slots.size >= MAX_SHARED_MACHINES) return undefined;
      slot = this.slots.size;
      this.slots.set(id, slot);
    }
    Atomics.and(this.counts, slot, ~CLOSED);
    this.times[slot] = now;
    return new SharedLoad(this, slot, port);
  }

  give(slot: number, now: number): void {
    Atomics.sub(this.counts, slot, 1);
    this.times[slot] = now;
  }

  setWaiting(on: boolean): void {
    Atomics.store(this.ctrl, CTRL_WAITING, on ? 1 : 0);
  }

  waiting(): boolean {
    return Atomics.load(this.ctrl, CTRL_WAITING) !== 0;
  }
}

export class SharedLoad implements Load {
  constructor(
    private readonly t: LoadTable,
    readonly slot: number,
    public port: number | undefined,
  ) {}

  get inflight(): number {
    return Atomics.load(this.t.counts, this.slot) & ~CLOSED;
  }

  get lastActive(): number {
    return this.t.times[this.slot]!;
  }

  set lastActive(v: number) {
    this.t.times[this.slot] = v;
  }

  take(limit: number): boolean {
    return takeSlot(this.t.counts, this.slot, limit);
  }

  give(now: number): void {
    this.t.give(this.slot, now);
  }

  close(): boolean {
    return Atomics.compareExchange(this.t.counts, this.slot, 0, CLOSED) === 0;
  }
}
