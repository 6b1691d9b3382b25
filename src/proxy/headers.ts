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

/** Byte runs [start, end) of the head being assembled (assemble() is synchronous). */
const RUNS: number[] = [];

/**
 * One buffer: `prefix`, bytes [lineFrom, lineTo) of the start line, `mid`,
 * the header lines whose kind is in `keep` (a bit mask), `tail` (latin1)
 * and then `body`, so head and first body bytes go out in one write.
 * Kept lines that are adjacent in the message (most of them: only the
 * hop-by-hop ones are left out) are copied as one run.
 */
function assemble(h: MessageHead, prefix: string, lineFrom: number, lineTo: number, mid: string, keep: number, tail: string, body: Buffer | null): Buffer {
  const { buf, fields } = h;
  const listed = h.connection ? listedByConnection(h) : undefined;
  const runs = RUNS;
  let nr = 0;
  let size = prefix.length + mid.length + tail.length + (body ? body.length : 0);
  // With nothing between them, the start line and the first header line are one run.
  if (mid.length === 0) {
    runs[0] = lineFrom;
    runs[1] = lineTo;
    nr = 2;
  } else size += lineTo - lineFrom;
  for (let i = 0; i < h.nf; i += FIELD) {
    if (((keep >> fields[i + 2]!) & 1) === 0 || (listed !== undefined && listed.has(i / FIELD))) continue;
    const s = fields[i]!;
    const e = fields[i + 1]! + 2;
    if (nr > 0 && runs[nr - 1] === s) runs[nr - 1] = e;
    else {
      runs[nr] = s;
      runs[nr + 1] = e;
      nr += 2;
    }
  }
  for (let r = 0; r < nr; r += 2) size += runs[r + 1]! - runs[r]!;
  const out = Buffer.allocUnsafe(size);
  let o = writeLatin1(out, prefix, 0);
  if (mid.length !== 0) {
    o += copyBytes(buf, lineFrom, lineTo, out, o);
    o += writeLatin1(out, mid, o);
  }
  for (let r = 0; r < nr; r += 2) o += copyBytes(buf, runs[r]!, runs[r + 1]!, out, o);
  o += writeLatin1(out, tail, o);
  if (body) copyBytes(body, 0, body.length, out, o);
  return out;
}

const bit = (kind: number) => 1 << kind;
const KEEP_UP = bit(OTHER) | bit(HOST) | bit(CONTENT_LENGTH);

/**
 * The request head for a machine, as HTTP/1.1: the client's headers
 * minus hop-by-hop ones, plus X-Forwarded-* and the request id, and the
 * body framing (Content-Length as sent; a chunked body stays chunked).
 */
export function upstreamHead(h: RequestHead, info: ForwardInfo, body: Buffer | null = null): Buffer {
  const xff = h.forwardedFor;
  // One string (a rope: V8 writes it out without flattening), one native write.
  const tail =
    (xff ? `X-Forwarded-For: ${xff}, ` : 'X-Forwarded-For: ') +
    info.clientIp +
    '\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ' +
    (h.host ?? '') +
    (info.connTail ?? connectionTail(info.clientIp, info.port)) +
    info.requestId +
    (h.upgrade !== undefined ? `\r\nConnection: Upgrade\r\nUpgrade: ${h.upgrade}\r\n\r\n` : h.chunked ? '\r\nTransfer-Encoding: chunked\r\n\r\n' : '\r\n\r\n');
  // Request line up to "HTTP/1." as sent; the version becomes 1.1.
  return assemble(h, '', h.start, h.lineEnd - 1, '1\r\n', KEEP_UP, tail, body);
}

/**
 * A machine's response head for the client (as HTTP/1.1), hop-by-hop
 * headers removed, the request id added, `framing` (the Transfer-Encoding
 * / Connection lines the proxy decided on) appended, then `body`.
 */
export function downstreamHead(h: ResponseHead, requestId: string, framing: string, body: Buffer | null = null): Buffer {
  const keep = h.transferEncoding ? KEEP_DOWN_TE : KEEP_DOWN;
  // "HTTP/1.1" + the status line after the version.
  return assemble(h, 'HTTP/1.1', h.start + 8, h.lineEnd + 2, '', keep, 'Fly-Request-Id: ' + requestId + '\r\n' + framing + '\r\n', body);
}
const KEEP_DOWN = KEEP_UP | bit(OWN) | bit(X_FORWARDED_FOR);
const KEEP_DOWN_TE = KEEP_DOWN & ~bit(CONTENT_LENGTH);

/** A 1xx answer relayed as the machine sent it, plus the request id (101). */
export function interimHead(h: ResponseHead, requestId: string | undefined): Buffer {
  const tail = requestId ? `Fly-Request-Id: ${requestId}\r\n\r\n` : '\r\n';
  const out = Buffer.allocUnsafe(h.end - 2 - h.start + tail.length);
  writeLatin1(out, tail, copyBytes(h.buf, h.start, h.end - 2, out, 0));
  return out;
}
