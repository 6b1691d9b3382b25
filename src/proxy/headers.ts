import { randomBytes } from 'node:crypto';
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
  /** The request id as a string, or its number (requestIdOf), written as bytes without making the string. */
  requestId: string | number;
  clientIp: string;
  /** Listening port of the proxy, for X-Forwarded-Port. */
  port: number;
  /** connectionTail(clientIp, port), computed once per client connection. */
  connTail?: string;
  /** connectionBytes(clientIp, port), the same once per client connection. */
  connBytes?: ConnectionBytes;
}

/** The part of the added headers that is the same for every request on a client connection. */
export function connectionTail(clientIp: string, port: number): string {
  return `\r\nX-Forwarded-Port: ${port}\r\nFly-Client-IP: ${clientIp}\r\nFly-Request-Id: `;
}

/** The added headers' constant parts as bytes: before the Host value, and after it up to the request id. */
export interface ConnectionBytes {
  beforeHost: Buffer;
  afterHost: Buffer;
}

export function connectionBytes(clientIp: string, port: number): ConnectionBytes {
  return {
    beforeHost: Buffer.from(`X-Forwarded-For: ${clientIp}\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: `, 'latin1'),
    afterHost: Buffer.from(connectionTail(clientIp, port), 'latin1'),
  };
}

/*
 * Request ids: `<8 hex per proxy thread><8 hex counter>-local`. Heads get
 * the id written as bytes from its number; the string is made only when
 * something needs it (error answers, tunnels).
 */
const HEX = Buffer.from('0123456789abcdef');
const ID_PREFIX = Buffer.from(randomBytes(4).toString('hex'), 'latin1');
const ID_SUFFIX = Buffer.from('-local');
/** Length of a request id. */
export const REQUEST_ID_LENGTH = 22;
let idSeq = 0;

/** The number of a new request id. */
export function nextRequestId(): number {
  return (idSeq = (idSeq + 1) >>> 0);
}

export function requestIdString(n: number): string {
  return `${ID_PREFIX.toString('latin1')}${n.toString(16).padStart(8, '0')}-local`;
}

function writeRequestId(out: Buffer, o: number, id: string | number): number {
  if (typeof id === 'string') return o + writeLatin1(out, id, o);
  for (let i = 0; i < 8; i++) out[o + i] = ID_PREFIX[i]!;
  for (let i = 0; i < 8; i++) out[o + 15 - i] = HEX[(id >>> (4 * i)) & 15]!;
  for (let i = 0; i < 6; i++) out[o + 16 + i] = ID_SUFFIX[i]!;
  return o + REQUEST_ID_LENGTH;
}

const idLength = (id: string | number) => (typeof id === 'string' ? id.length : REQUEST_ID_LENGTH);

/** Copies a small constant buffer (a JS loop: no native call for a few dozen bytes). */
function put(out: Buffer, o: number, b: Buffer): number {
  const n = b.length;
  if (n > 64) b.copy(out, o);
  else for (let i = 0; i < n; i++) out[o + i] = b[i]!;
  return o + n;
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
/** Where assemble() left room for the tail (when it was given a length instead of a string). */
let tailAt = 0;

/**
 * One buffer: `prefix`, bytes [lineFrom, lineTo) of the start line, `mid`,
 * the header lines whose kind is in `keep` (a bit mask), `tail` (latin1)
 * and then `body`, so head and first body bytes go out in one write.
 * Kept lines that are adjacent in the message (most of them: only the
 * hop-by-hop ones are left out) are copied as one run.
 */
function assemble(h: MessageHead, prefix: string, lineFrom: number, lineTo: number, mid: string, keep: number, tail: string | number, body: Buffer | null): Buffer {
  const { buf, fields } = h;
  const listed = h.connection ? listedByConnection(h) : undefined;
  const runs = RUNS;
  let nr = 0;
  const tailLength = typeof tail === 'number' ? tail : tail.length;
  let size = prefix.length + mid.length + tailLength + (body ? body.length : 0);
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
  tailAt = o;
  if (typeof tail === 'number') o += tail;
  else o += writeLatin1(out, tail, o);
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
  if (xff === undefined && h.upgrade === undefined) {
    // The common request: the added headers copied from per-connection bytes,
    // the Host value from the request's own bytes, the id from its number.
    const cb = info.connBytes ?? connectionBytes(info.clientIp, info.port);
    const end = h.chunked ? CHUNKED_END : HEAD_END;
    const hostLength = h.hostEnd - h.hostStart;
    const out = assemble(h, '', h.start, h.lineEnd - 1, '1\r\n', KEEP_UP, cb.beforeHost.length + hostLength + cb.afterHost.length + idLength(info.requestId) + end.length, body);
    let o = put(out, tailAt, cb.beforeHost);
    o += copyBytes(h.buf, h.hostStart, h.hostEnd, out, o);
    o = put(out, o, cb.afterHost);
    o = writeRequestId(out, o, info.requestId);
    put(out, o, end);
    return out;
  }
  // One string (a rope: V8 writes it out without flattening), one native write.
  const tail =
    (xff ? `X-Forwarded-For: ${xff}, ` : 'X-Forwarded-For: ') +
    info.clientIp +
    '\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ' +
    (h.host ?? '') +
    (info.connTail ?? connectionTail(info.clientIp, info.port)) +
    (typeof info.requestId === 'string' ? info.requestId : requestIdString(info.requestId)) +
    (h.upgrade !== undefined ? `\r\nConnection: Upgrade\r\nUpgrade: ${h.upgrade}\r\n\r\n` : h.chunked ? '\r\nTransfer-Encoding: chunked\r\n\r\n' : '\r\n\r\n');
  // Request line up to "HTTP/1." as sent; the version becomes 1.1.
  return assemble(h, '', h.start, h.lineEnd - 1, '1\r\n', KEEP_UP, tail, body);
}

/**
 * A machine's response head for the client (as HTTP/1.1), hop-by-hop
 * headers removed, the request id added, `framing` (the Transfer-Encoding
 * / Connection lines the proxy decided on) appended, then `body`.
 */
export function downstreamHead(h: ResponseHead, requestId: string | number, framing: string, body: Buffer | null = null): Buffer {
  const keep = h.transferEncoding ? KEEP_DOWN_TE : KEEP_DOWN;
  const fb = framingBytes(framing);
  // "HTTP/1.1" + the status line after the version.
  const out = assemble(h, 'HTTP/1.1', h.start + 8, h.lineEnd + 2, '', keep, ID_HEADER.length + idLength(requestId) + 2 + fb.length + 2, body);
  let o = put(out, tailAt, ID_HEADER);
  o = writeRequestId(out, o, requestId);
  out[o] = 13;
  out[o + 1] = 10;
  o = put(out, o + 2, fb);
  out[o] = 13;
  out[o + 1] = 10;
  return out;
}

const ID_HEADER = Buffer.from('Fly-Request-Id: ');
const HEAD_END = Buffer.from('\r\n\r\n');
const CHUNKED_END = Buffer.from('\r\nTransfer-Encoding: chunked\r\n\r\n');

/** The framing lines as bytes: a few distinct strings per proxy (keep-alive, close, chunked...), each encoded once. */
const framings = new Map<string, Buffer>();
function framingBytes(s: string): Buffer {
  let b = framings.get(s);
  if (b === undefined) {
    b = Buffer.from(s, 'latin1');
    if (framings.size < 64) framings.set(s, b);
  }
  return b;
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
