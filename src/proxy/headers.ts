import type { IncomingMessage } from 'node:http';

/** RFC 9110 §7.6.1 hop-by-hop headers: never forwarded as they are. */
const HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Headers the proxy sets itself; a client's values are dropped, not trusted. */
const OWN = new Set(['fly-request-id', 'fly-client-ip', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'fly-forwarded-port']);

function connectionTokens(raw: string[]): Set<string> | undefined {
  let out: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') {
      for (const t of raw[i + 1]!.split(',')) {
        const k = t.trim().toLowerCase();
        if (k) (out ??= new Set()).add(k);
      }
    }
  }
  return out;
}

export interface ForwardInfo {
  requestId: string;
  clientIp: string;
  /** Listening port of the proxy, for X-Forwarded-Port. */
  port: number;
  upgrade: boolean;
}

/**
 * The header list sent to a machine: the client's headers minus hop-by-hop
 * ones, plus X-Forwarded-* and a request id. Kept as a flat raw array so
 * case and repeated headers survive.
 */
export function upstreamHeaders(req: IncomingMessage, info: ForwardInfo): string[] {
  const raw = req.rawHeaders;
  const conn = connectionTokens(raw);
  const out: string[] = [];
  let xff: string | undefined;
  let host = '';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (lower === 'x-forwarded-for') {
      xff = xff === undefined ? raw[i + 1]! : `${xff}, ${raw[i + 1]}`;
      continue;
    }
    if (lower === 'host') host = raw[i + 1]!;
    if (HOP.has(lower) || OWN.has(lower) || conn?.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  out.push(
    'X-Forwarded-For', xff ? `${xff}, ${info.clientIp}` : info.clientIp,
    'X-Forwarded-Proto', 'http',
    'X-Forwarded-Host', host,
    'X-Forwarded-Port', String(info.port),
    'Fly-Client-IP', info.clientIp,
    'Fly-Request-Id', info.requestId,
  );
  if (info.upgrade) out.push('Connection', 'Upgrade', 'Upgrade', req.headers.upgrade ?? '');
  return out;
}

/** A machine's response headers for the client: hop-by-hop ones removed, request id added. */
export function downstreamHeaders(raw: string[], requestId: string): string[] {
  const conn = connectionTokens(raw);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (HOP.has(lower) || conn?.has(lower) || lower === 'fly-request-id') continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  out.push('Fly-Request-Id', requestId);
  return out;
}

/** Whether a request carries a body (RFC 9112 §6.3). */
export function hasBody(req: IncomingMessage): boolean {
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) return true;
  const cl = req.headers['content-length'];
  return cl !== undefined && cl !== '0';
}
