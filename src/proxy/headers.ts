import type { RequestHead, ResponseHead } from './http1.js';

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

export interface ForwardInfo {
  requestId: string;
  clientIp: string;
  /** Listening port of the proxy, for X-Forwarded-Port. */
  port: number;
}

/**
 * The request head sent to a machine: the client's headers (case, order
 * and repeats kept) minus hop-by-hop ones, plus X-Forwarded-* and a request
 * id, and the body framing the proxy forwards (Content-Length is kept as
 * sent; a chunked body stays chunked).
 */
export function upstreamHead(h: RequestHead, info: ForwardInfo): string {
  const raw = h.raw;
  const lower = h.lower;
  const conn = h.connection;
  let s = `${h.method} ${h.target} HTTP/1.1\r\n`;
  let xff: string | undefined;
  let host = '';
  for (let i = 0, j = 0; j < lower.length; i += 2, j++) {
    const l = lower[j]!;
    if (l === 'x-forwarded-for') {
      xff = xff === undefined ? raw[i + 1]! : `${xff}, ${raw[i + 1]}`;
      continue;
    }
    if (l === 'host') host = raw[i + 1]!;
    if (HOP.has(l) || OWN.has(l) || (conn !== undefined && conn.includes(l))) continue;
    s += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  s +=
    `X-Forwarded-For: ${xff ? `${xff}, ${info.clientIp}` : info.clientIp}\r\n` +
    `X-Forwarded-Proto: http\r\nX-Forwarded-Host: ${host}\r\nX-Forwarded-Port: ${info.port}\r\n` +
    `Fly-Client-IP: ${info.clientIp}\r\nFly-Request-Id: ${info.requestId}\r\n`;
  if (h.upgrade !== undefined) s += `Connection: Upgrade\r\nUpgrade: ${h.upgrade}\r\n`;
  else if (h.chunked) s += 'Transfer-Encoding: chunked\r\n';
  return s + '\r\n';
}

/**
 * A machine's response head for the client: hop-by-hop headers removed,
 * the request id added, and `framing` (Transfer-Encoding / Connection
 * lines the proxy decided on) appended.
 */
export function downstreamHead(h: ResponseHead, requestId: string, framing: string): string {
  const raw = h.raw;
  const lower = h.lower;
  const conn = h.connection;
  let s = `HTTP/1.1 ${h.status} ${h.reason}\r\n`;
  for (let i = 0, j = 0; j < lower.length; i += 2, j++) {
    const l = lower[j]!;
    if (HOP.has(l) || l === 'fly-request-id' || (conn !== undefined && conn.includes(l))) continue;
    if (l === 'content-length' && h.transferEncoding) continue;
    s += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return `${s}Fly-Request-Id: ${requestId}\r\n${framing}\r\n`;
}

/** A 101 (or other 1xx) answer, relayed as the machine sent it plus the request id. */
export function interimHead(h: ResponseHead, requestId: string | undefined): string {
  let s = `HTTP/1.1 ${h.status} ${h.reason}\r\n`;
  for (let i = 0; i < h.raw.length; i += 2) s += `${h.raw[i]}: ${h.raw[i + 1]}\r\n`;
  if (requestId) s += `Fly-Request-Id: ${requestId}\r\n`;
  return s + '\r\n';
}
