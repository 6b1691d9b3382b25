import type { Logger } from '../shared/log.js';
import type { Client, ActiveExchange } from './client.js';
import type { RequestHead, ResponseHead } from './http1.js';
import type { Pool } from './pool.js';
import type { UpstreamPool } from './upstream.js';

/**
 * What one proxy's connections and exchanges share: settings and pools.
 * One object per proxy, reached through each client, so the per-request
 * path allocates nothing to get at it.
 */
export interface ProxyContext {
  readonly log: Logger;
  readonly domain: string;
  /** The bound port (0 until listening). */
  port: number;
  readonly headersTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  /** A keep-alive client idle this long gives its read buffer back (the sweep's resolution applies). */
  readonly releaseIdleBufferMs: number;
  readonly maxHeaderSize: number;
  /** `Connection: keep-alive` plus `Keep-Alive: timeout=N`, for answers that keep the connection. */
  readonly keepAliveHeader: string;
  readonly pool: Pool;
  readonly upstreams: UpstreamPool;
  /** Response heads are consumed as soon as they are parsed: one object for all. */
  readonly scratchResponse: ResponseHead;
  /** Starts the exchange for a parsed request head (server.ts wires in exchange.ts). */
  exchange(c: Client, head: RequestHead): ActiveExchange;
}
