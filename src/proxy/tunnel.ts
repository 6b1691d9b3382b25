import type { Client } from './client.js';
import { interimHead } from './headers.js';
import type { ResponseHead } from './http1.js';
import type { Upstream } from './upstream.js';

/**
 * Websockets and other `Upgrade`s: after the machine's 101 the client and
 * machine sockets are spliced. No idle timeout applies (websockets are often
 * quiet for long stretches); only a close ends a tunnel, and a FIN from
 * either side is passed on and then both close (no half-open tunnels, as nginx).
 */
export interface TunnelEnds {
  readonly c: Client;
  up: Upstream | null;
  readonly requestId: string;
  /** Cuts both connections. */
  destroy(): void;
}

/** Relays the 101 (and any bytes after it), then the client bytes held since the request head. */
export function openTunnel(t: TunnelEnds, res: ResponseHead, rest: Buffer | null): void {
  const c = t.c;
  const up = t.up!;
  const head = interimHead(res, t.requestId);
  c.conn.write(rest ? Buffer.concat([head, rest]) : head);
  if (c.buf) {
    up.conn.write(c.buf);
    c.buf = null;
  }
  c.resume();
}

export function tunnelFromClient(t: TunnelEnds, chunk: Buffer): void {
  if (!t.up?.conn.write(chunk)) t.c.pause();
}

export function tunnelFromMachine(t: TunnelEnds, chunk: Buffer): void {
  if (!t.c.conn.write(chunk)) t.up?.conn.pause();
}

export function tunnelClientEnded(t: TunnelEnds): void {
  t.up?.sock.end(() => t.destroy());
}

export function tunnelMachineEnded(t: TunnelEnds): void {
  t.c.sock.end(() => t.destroy());
}

export function tunnelMachineClosed(t: TunnelEnds): void {
  if (!t.c.sock.writableEnded) t.c.sock.end(() => t.destroy());
}
