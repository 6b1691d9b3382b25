import { CONTENT_LENGTH, HOST, OTHER, OWN, X_FORWARDED_FOR, FIELD, copyBytes, fieldName, writeLatin1, type MessageHead, type RequestHead, type ResponseHead } from './http1.js';

/*
 * Heads are forwarded by copying the validated header lines byte for byte
 * (case, order, repeats and exact values kept) and leaving out the ones
 * that must not pass: RFC 9110 §7.6.1 hop-by-hop headers (Connection and
 * the names it lists, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade,
 * Proxy-*), and on requests the headers the proxy sets itself
 * (X-Forwarded-*, Fly-Client-IP, Fly-Request-Id: a client's values are
 * dropped, not trusted; X-Forwarded-For is appended to).
 */

export interface ForwardInfo {
  requestId: string;
  clientIp: string;
  /** Listening port of the proxy, for X-Forwarded-Port. */
  port: number;
  /** connectionTail(clientIp, port), computed once per client connection. */
  connTail?: string;
}

/** The part of the added headers that is the same for every request on a client connection. */
export function connectionTail(clientIp: string, port: number): string {
  return `\r\nX-Forwarded-Port: ${port}\r\nFly-Client-IP: ${clientIp}\r\nFly-Request-Id: `;
}

/** Header indexes named by the Connection header (beyond close/keep-alive/upgrade). */
function listedByConnection(h: MessageHead): Set<number> | undefined {
  const extra = h.connection;
  if (!extra || extra.length === 0) return undefined;
  const out = new Set<number>();
  const n = h.nf / FIELD;
  for (let i = 0; i < n; i++) if (extra.includes(fieldName(h, i))) out.add(i);
  return out;
}

/**
 * One buffer: `prefix`, bytes [lineFrom, lineTo) of the start line, `mid`, the kept header lines,
 * `tail` (latin1) and then `body`, so head and first body bytes go out in
 * one write.
 */
function assemble(h: MessageHead, prefix: string, lineFrom: number, lineTo: number, mid: string, keep: (kind: number) => boolean, tail: string[], body: Buffer | null): Buffer {
  const { buf, fields } = h;
  const listed = h.connection ? listedByConnection(h) : undefined;
  let size = prefix.length + (lineTo - lineFrom) + mid.length + (body ? body.length : 0);
  for (let i = 0; i < tail.length; i++) size += tail[i]!.length;
  for (let i = 0; i < h.nf; i += FIELD) {
    if (keep(fields[i + 2]!) && !listed?.has(i / FIELD)) size += fields[i + 1]! + 2 - fields[i]!;
  }
  const out = Buffer.allocUnsafe(size);
  let o = writeLatin1(out, prefix, 0);
  o += copyBytes(buf, lineFrom, lineTo, out, o);
  o += writeLatin1(out, mid, o);
  for (let i = 0; i < h.nf; i += FIELD) {
    if (keep(fields[i + 2]!) && !listed?.has(i / FIELD)) o += copyBytes(buf, fields[i]!, fields[i + 1]! + 2, out, o);
  }
  for (let i = 0; i < tail.length; i++) o += writeLatin1(out, tail[i]!, o);
  if (body) copyBytes(body, 0, body.length, out, o);
  return out;
}

const keepUp = (kind: number) => kind === OTHER || kind === HOST || kind === CONTENT_LENGTH;

/**
 * The request head for a machine, as HTTP/1.1: the client's headers
 * minus hop-by-hop ones, plus X-Forwarded-* and the request id, and the
 * body framing (Content-Length as sent; a chunked body stays chunked).
 */
export function upstreamHead(h: RequestHead, info: ForwardInfo, body: Buffer | null = null): Buffer {
  const xff = h.forwardedFor;
  // Pieces written one after the other (no concatenated string per request).
  const t = TAIL;
  t[0] = xff ? `X-Forwarded-For: ${xff}, ` : 'X-Forwarded-For: ';
  t[1] = info.clientIp;
  t[2] = '\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ';
  t[3] = h.host ?? '';
  t[4] = info.connTail ?? connectionTail(info.clientIp, info.port);
  t[5] = info.requestId;
  t[6] = h.upgrade !== undefined ? `\r\nConnection: Upgrade\r\nUpgrade: ${h.upgrade}\r\n\r\n` : h.chunked ? '\r\nTransfer-Encoding: chunked\r\n\r\n' : '\r\n\r\n';
  // Request line up to "HTTP/1." as sent; the version becomes 1.1.
  return assemble(h, '', h.start, h.lineEnd - 1, '1\r\n', keepUp, t, body);
}
/** Scratch for upstreamHead (assemble() is synchronous). */
const TAIL: string[] = ['', '', '', '', '', '', ''];

/**
 * A machine's response head for the client (as HTTP/1.1), hop-by-hop
 * headers removed, the request id added, `framing` (the Transfer-Encoding
 * / Connection lines the proxy decided on) appended, then `body`.
 */
export function downstreamHead(h: ResponseHead, requestId: string, framing: string, body: Buffer | null = null): Buffer {
  const keep = h.transferEncoding ? keepDownTE : keepDown;
  // "HTTP/1.1" + the status line after the version.
  const t = DOWN_TAIL;
  t[1] = requestId;
  t[3] = framing;
  return assemble(h, 'HTTP/1.1', h.start + 8, h.lineEnd + 2, '', keep, t, body);
}
const DOWN_TAIL: string[] = ['Fly-Request-Id: ', '', '\r\n', '', '\r\n'];
const keepDown = (kind: number) => kind === OTHER || kind === HOST || kind === CONTENT_LENGTH || kind === OWN || kind === X_FORWARDED_FOR;
const keepDownTE = (kind: number) => kind !== CONTENT_LENGTH && keepDown(kind);

/** A 1xx answer relayed as the machine sent it, plus the request id (101). */
export function interimHead(h: ResponseHead, requestId: string | undefined): Buffer {
  const tail = requestId ? `Fly-Request-Id: ${requestId}\r\n\r\n` : '\r\n';
  const out = Buffer.allocUnsafe(h.end - 2 - h.start + tail.length);
  writeLatin1(out, tail, copyBytes(h.buf, h.start, h.end - 2, out, 0));
  return out;
}
