/**
 * A minimal, strict HTTP/1.1 message-head parser and chunked-body reader
 * for the proxy's fast path (RFC 9110/9112).
 *
 * Strict on purpose: a proxy and the server behind it must agree on where
 * one request ends and the next begins, or a client can hide a request
 * inside another one (request smuggling). Anything with more than one
 * possible reading is rejected instead of guessed: both Content-Length and
 * Transfer-Encoding, repeated or non-numeric Content-Length, a
 * Transfer-Encoding other than `chunked`, obs-fold continuation lines, bare
 * CR or LF, whitespace before the colon, control characters, bad chunk
 * sizes. The bytes forwarded are therefore exactly the bytes validated.
 */

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** tchar (RFC 9110 §5.6.2): header names, methods. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TCHAR[c] = 1;
for (let c = 65; c <= 90; c++) TCHAR[c] = TCHAR[c + 32] = 1;
/** Field value bytes: VCHAR, obs-text, SP, HT (no CTLs, no DEL). */
const VALUE = new Uint8Array(256);
for (let c = 32; c < 256; c++) VALUE[c] = c === 127 ? 0 : 1;
VALUE[9] = 1;

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;

/** Numbers per header line in MessageHead.fields. */
export const FIELD = 6;

/** Header kinds the proxy acts on (others are OTHER). */
export const OTHER = 0;
export const HOST = 1;
export const CONTENT_LENGTH = 2;
export const TRANSFER_ENCODING = 3;
export const CONNECTION = 4;
export const UPGRADE = 5;
/** Other hop-by-hop headers: never forwarded. */
export const HOP = 6;
/** Headers the proxy sets itself: a client's values are dropped. */
export const OWN = 7;
export const X_FORWARDED_FOR = 8;
export const FLY_REQUEST_ID = 9;

const KINDS: Record<string, number> = {
  host: HOST,
  'content-length': CONTENT_LENGTH,
  'transfer-encoding': TRANSFER_ENCODING,
  connection: CONNECTION,
  upgrade: UPGRADE,
  'keep-alive': HOP,
  'proxy-connection': HOP,
  'proxy-authenticate': HOP,
  'proxy-authorization': HOP,
  te: HOP,
  trailer: HOP,
  'x-forwarded-for': X_FORWARDED_FOR,
  'fly-request-id': FLY_REQUEST_ID,
  'fly-client-ip': OWN,
  'x-forwarded-proto': OWN,
  'x-forwarded-host': OWN,
  'x-forwarded-port': OWN,
  'fly-forwarded-port': OWN,
};
/** Names by length, so most headers are classified with one length check. */
const BY_LENGTH: [Uint8Array, number][][] = [];
for (const [name, kind] of Object.entries(KINDS)) (BY_LENGTH[name.length] ??= []).push([Buffer.from(name), kind]);

function kindOf(buf: Buffer, s: number, e: number): number {
  const cands = BY_LENGTH[e - s];
  if (cands === undefined) return OTHER;
  outer: for (let k = 0; k < cands.length; k++) {
    const lit = cands[k]![0];
    for (let i = 0; i < lit.length; i++) {
      // tchar bytes OR 0x20 map A-Z to a-z and leave '-' and digits alone.
      if ((buf[s + i]! | 0x20) !== lit[i]) continue outer;
    }
    return cands[k]![1];
  }
  return OTHER;
}

export interface MessageHead {
  /** The buffer the head was parsed from, and its range (through the final CRLF). */
  buf: Buffer;
  start: number;
  end: number;
  /** Index of the CR ending the start line. */
  lineEnd: number;
  /** Per header line, flat (FIELD numbers each): start offset, offset of its CR, kind, name end, value start, value end. */
  fields: number[];
  /** Content-Length, or -1 when absent. */
  contentLength: number;
  /** Transfer-Encoding ends in chunked. */
  chunked: boolean;
  /** Entries of `fields` in use (the array is reused for response heads). */
  nf: number;
  /** CONN_* flags for the standard Connection tokens. */
  connFlags: number;
  /** Other (lower-cased) tokens of the Connection header(s): names of headers not to forward. */
  connection: string[] | undefined;
  /** HTTP/1.x minor version. */
  minor: number;
}

export interface RequestHead extends MessageHead {
  method: string;
  host: string | undefined;
  /** Where the Host value is in `buf` (copied as bytes into the forwarded head). */
  hostStart: number;
  hostEnd: number;
  /** X-Forwarded-For values the client sent, joined with ", ". */
  forwardedFor: string | undefined;
  /** The Upgrade header's value when Connection also lists `upgrade`. */
  upgrade: string | undefined;
  /** The client wants the connection closed after this exchange. */
  close: boolean;
}

export interface ResponseHead extends MessageHead {
  status: number;
  /** Any Transfer-Encoding present (chunked or not: then read until close). */
  transferEncoding: boolean;
  /** The server keeps the connection open after this response. */
  keepAlive: boolean;
}

/**
 * Where the head ends: the index just past CRLFCRLF, or -1 while
 * incomplete. `from` is where the search may resume (bytes seen before).
 */
export function headEnd(buf: Buffer, from = 0): number {
  // A plain loop: heads are small, and a builtin call costs more than the scan.
  const n = buf.length - 3;
  for (let i = from > 3 ? from - 3 : 0; i < n; i++) {
    if (buf[i + 3] === LF) {
      if (buf[i] === CR && buf[i + 1] === LF && buf[i + 2] === CR) return i + 4;
    }
  }
  return -1;
}

/**
 * Copies src[s, e) to dst at o. A JS loop costs ~4 ns a byte, a native copy
 * ~100-200 ns a call whatever the length (measured here): loop only short runs.
 */
export function copyBytes(src: Buffer, s: number, e: number, dst: Buffer, o: number): number {
  const n = e - s;
  if (n > 40) src.copy(dst, o, s, e);
  else for (let i = 0; i < n; i++) dst[o + i] = src[s + i]!;
  return n;
}

/** Writes a latin1 string at o (the proxy's own header text is ASCII); native past a few characters, as copyBytes. */
export function writeLatin1(dst: Buffer, str: string, o: number): number {
  const n = str.length;
  if (n > 24) dst.write(str, o, n, 'latin1');
  else for (let i = 0; i < n; i++) dst[o + i] = str.charCodeAt(i);
  return n;
}

/** Leading empty lines before a request line (RFC 9112 §2.2: may be ignored). */
export function skipEmptyLines(buf: Buffer): number {
  let i = 0;
  while (i + 1 < buf.length && buf[i] === CR && buf[i + 1] === LF) i += 2;
  return i;
}

export const CONN_CLOSE = 1;
export const CONN_KEEP_ALIVE = 2;
export const CONN_UPGRADE = 4;
const COMMON_TOKENS = [
  [Buffer.from('close'), CONN_CLOSE],
  [Buffer.from('keep-alive'), CONN_KEEP_ALIVE],
  [Buffer.from('upgrade'), CONN_UPGRADE],
] as const;

/** Comma-separated Connection tokens of buf[s, e): flags for the standard ones, strings for others. */
function connectionTokens(buf: Buffer, s: number, e: number, h: MessageHead): void {
  let i = s;
  while (i < e) {
    while (i < e && (buf[i] === SP || buf[i] === HT || buf[i] === 44)) i++;
    let j = i;
    while (j < e && buf[j] !== 44) j++;
    let k = j;
    while (k > i && (buf[k - 1] === SP || buf[k - 1] === HT)) k--;
    if (k > i) {
      let flag = 0;
      for (const [lit, f] of COMMON_TOKENS) {
        if (lit.length !== k - i) continue;
        let same = true;
        for (let x = 0; x < lit.length && same; x++) same = (buf[i + x]! | 0x20) === lit[x];
        if (same) {
          flag = f;
          break;
        }
      }
      if (flag) h.connFlags |= flag;
      else (h.connection ??= []).push(buf.toString('latin1', i, k).toLowerCase());
    }
    i = j;
  }
}

function isHttp1(buf: Buffer, p: number): boolean {
  // "HTTP/1."
  return buf[p] === 72 && buf[p + 1] === 84 && buf[p + 2] === 84 && buf[p + 3] === 80 && buf[p + 4] === 47 && buf[p + 5] === 49 && buf[p + 6] === 46;
}



/**
 * Validates and indexes the header lines from `p` (just after the start
 * line's CRLF) to the head's end. Byte-level on purpose: no string per
 * header; callers decode only the values they need.
 */
function parseFields(h: MessageHead, p: number, status: number, what: string): void {
  const buf = h.buf;
  const last = h.end - 2; // the CR of the final empty line
  while (p < last) {
    const ls = p;
    const c0 = buf[p]!;
    if (c0 === SP || c0 === HT) throw new HttpError(status, `obsolete line folding (a header line starting with whitespace) in the ${what} head`);
    while (TCHAR[buf[p]!] === 1) p++;
    if (p === ls || buf[p] !== 58 /* : */) throw new HttpError(status, `malformed header line in the ${what} head (a name must be a token followed directly by a colon)`);
    const ne = p;
    p++;
    while (buf[p] === SP || buf[p] === HT) p++;
    const vs = p;
    while (VALUE[buf[p]!] === 1) p++;
    if (buf[p] !== CR || buf[p + 1] !== LF) throw new HttpError(status, `control character, bare CR or bare LF in a header of the ${what} head`);
    let ve = p;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HT)) ve--;
    const kind = kindOf(buf, ls, ne);
    const f = h.fields;
    const n = h.nf;
    f[n] = ls;
    f[n + 1] = p;
    f[n + 2] = kind;
    f[n + 3] = ne;
    f[n + 4] = vs;
    f[n + 5] = ve;
    h.nf = n + FIELD;
    p += 2;
  }
}

function parseLength(buf: Buffer, vs: number, ve: number, status: number, what: string): number {
  const n = ve - vs;
  if (n === 0 || n > 15) throw new HttpError(status, `invalid Content-Length in the ${what}`);
  let v = 0;
  for (let i = vs; i < ve; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) throw new HttpError(status, `invalid Content-Length ${JSON.stringify(buf.toString('latin1', vs, Math.min(ve, vs + 30)))} in the ${what}`);
    v = v * 10 + d;
  }
  return v;
}


const METHODS = ['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'].map((m) => [Buffer.from(m), m] as const);

/** Bytes buf[s, e) equal `lit`. */
function sameBytes(buf: Buffer, s: number, e: number, lit: Uint8Array): boolean {
  if (e - s !== lit.length) return false;
  for (let i = 0; i < lit.length; i++) if (buf[s + i] !== lit[i]) return false;
  return true;
}

/** The method as a string: the common ones without decoding. */
function methodOf(buf: Buffer, s: number, e: number): string {
  for (let k = 0; k < METHODS.length; k++) if (sameBytes(buf, s, e, METHODS[k]![0])) return METHODS[k]![1];
  return buf.toString('latin1', s, e);
}

/** The last Host value decoded, and its bytes: clients send the same Host request after request. */
const lastHost = { bytes: Buffer.alloc(256), len: -1, str: '' };

function hostOf(buf: Buffer, s: number, e: number): string {
  const n = e - s;
  const c = lastHost;
  if (n === c.len) {
    const b = c.bytes;
    let i = 0;
    while (i < n && buf[s + i] === b[i]) i++;
    if (i === n) return c.str;
  }
  const str = buf.toString('latin1', s, e);
  if (n <= c.bytes.length) {
    buf.copy(c.bytes, 0, s, e);
    c.len = n;
    c.str = str;
  }
  return str;
}

/**
 * Parses a request head in buf[start, end) (end from headEnd()). Throws
 * HttpError (400/501) for anything malformed or ambiguous.
 */
export function parseRequestHead(buf: Buffer, start: number, end: number): RequestHead {
  // Request line: method SP request-target SP HTTP/1.x CRLF, nothing else.
  let p = start;
  while (TCHAR[buf[p]!] === 1) p++;
  const me = p;
  let ok = p > start && buf[p] === SP;
  const ts = ++p;
  while (ok && buf[p]! > 32 && buf[p]! < 127) p++;
  const tEnd = p;
  ok = ok && tEnd > ts && buf[p] === SP && p + 11 <= end && isHttp1(buf, p + 1) && (buf[p + 8] === 49 || buf[p + 8] === 48) && buf[p + 9] === CR && buf[p + 10] === LF;
  if (!ok) {
    const nl = buf.indexOf(CR, start);
    throw new HttpError(400, `malformed request line ${JSON.stringify(buf.toString('latin1', start, Math.min(nl < 0 || nl > end ? end : nl, start + 60)))}; expected "METHOD /path HTTP/1.1"`);
  }
  const h: RequestHead = {
    buf,
    start,
    end,
    lineEnd: p + 9,
    fields: [],
    nf: 0,
    connFlags: 0,
    method: methodOf(buf, start, me),
    minor: buf[p + 8] === 49 ? 1 : 0,
    contentLength: -1,
    chunked: false,
    connection: undefined,
    host: undefined,
    hostStart: 0,
    hostEnd: 0,
    forwardedFor: undefined,
    upgrade: undefined,
    close: false,
  };
  let hosts = 0;
  let te: string | undefined;
  let upgrade: string | undefined;
  parseFields(h, p + 11, 400, 'request');
  const f = h.fields;
  for (let i = 0; i < h.nf; i += FIELD) {
    const vs = f[i + 4]!;
    const ve = f[i + 5]!;
    switch (f[i + 2]) {
      case HOST:
        if (++hosts > 1) throw new HttpError(400, 'more than one Host header in the request');
        h.host = hostOf(buf, vs, ve);
        h.hostStart = vs;
        h.hostEnd = ve;
        break;
      case CONTENT_LENGTH:
        if (h.contentLength >= 0) throw new HttpError(400, 'more than one Content-Length header in the request');
        h.contentLength = parseLength(buf, vs, ve, 400, 'request');
        break;
      case TRANSFER_ENCODING:
        if (te !== undefined) throw new HttpError(400, 'more than one Transfer-Encoding header in the request');
        te = buf.toString('latin1', vs, ve);
        break;
      case CONNECTION:
        connectionTokens(buf, vs, ve, h);
        break;
      case UPGRADE:
        upgrade = buf.toString('latin1', vs, ve);
        break;
      case X_FORWARDED_FOR: {
        const v = buf.toString('latin1', vs, ve);
        h.forwardedFor = h.forwardedFor === undefined ? v : `${h.forwardedFor}, ${v}`;
        break;
      }
    }
  }
  if (hosts === 0 && h.minor === 1) throw new HttpError(400, 'HTTP/1.1 request without a Host header');
  if (te !== undefined) {
    if (h.contentLength >= 0) throw new HttpError(400, 'request has both Content-Length and Transfer-Encoding; send only one');
    if (h.minor === 0) throw new HttpError(400, 'Transfer-Encoding in an HTTP/1.0 request');
    if (te.toLowerCase() !== 'chunked') throw new HttpError(501, `request Transfer-Encoding ${JSON.stringify(te.slice(0, 40))} is not supported; use chunked`);
    h.chunked = true;
  }
  if (h.method === 'CONNECT') throw new HttpError(501, 'CONNECT is not supported by this proxy');
  const cf = h.connFlags;
  if (upgrade !== undefined && cf & CONN_UPGRADE) h.upgrade = upgrade;
  h.close = h.minor === 0 ? !(cf & CONN_KEEP_ALIVE) : (cf & CONN_CLOSE) !== 0;
  return h;
}

/** Parses a response head from a machine. Throws HttpError (502) when malformed. */
export function parseResponseHead(buf: Buffer, start: number, end: number, into?: ResponseHead): ResponseHead {
  // Status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF.
  const p = start;
  let ok = p + 14 <= end && isHttp1(buf, p) && (buf[p + 7] === 49 || buf[p + 7] === 48) && buf[p + 8] === SP;
  let status = 0;
  for (let i = p + 9; ok && i < p + 12; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) ok = false;
    else status = status * 10 + d;
  }
  let q = p + 12;
  if (ok && buf[q] === SP) {
    q++;
    while (VALUE[buf[q]!] === 1) q++;
  }
  if (!ok || status < 100 || buf[q] !== CR || buf[q + 1] !== LF) {
    throw new HttpError(502, `malformed status line ${JSON.stringify(buf.toString('latin1', start, Math.min(end, start + 60)).split('\r')[0])}`);
  }
  // A caller that consumes the head at once passes one object to reuse.
  const h: ResponseHead = into ?? {
    buf,
    start: 0,
    end: 0,
    lineEnd: 0,
    fields: [],
    nf: 0,
    connFlags: 0,
    status: 0,
    minor: 0,
    contentLength: -1,
    chunked: false,
    transferEncoding: false,
    connection: undefined,
    keepAlive: false,
  };
  h.buf = buf;
  h.start = start;
  h.end = end;
  h.lineEnd = q;
  h.nf = 0;
  h.connFlags = 0;
  h.status = status;
  h.minor = buf[p + 7] === 49 ? 1 : 0;
  h.contentLength = -1;
  h.chunked = false;
  h.transferEncoding = false;
  h.connection = undefined;
  h.keepAlive = false;
  let te: string | undefined;
  parseFields(h, q + 2, 502, 'response');
  const f = h.fields;
  for (let i = 0; i < h.nf; i += FIELD) {
    const vs = f[i + 4]!;
    const ve = f[i + 5]!;
    switch (f[i + 2]) {
      case CONTENT_LENGTH: {
        const n = parseLength(buf, vs, ve, 502, 'response');
        if (h.contentLength >= 0 && n !== h.contentLength) throw new HttpError(502, 'conflicting Content-Length headers in the response');
        h.contentLength = n;
        break;
      }
      case TRANSFER_ENCODING: {
        const v = buf.toString('latin1', vs, ve);
        te = te === undefined ? v : `${te}, ${v}`;
        break;
      }
      case CONNECTION:
        connectionTokens(buf, vs, ve, h);
        break;
    }
  }
  if (te !== undefined) {
    h.transferEncoding = true;
    const codings = te.split(',');
    h.chunked = codings[codings.length - 1]!.trim().toLowerCase() === 'chunked';
    // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3); the
    // length is then not forwarded.
    h.contentLength = -1;
  }
  h.keepAlive = h.minor === 1 ? !(h.connFlags & CONN_CLOSE) : (h.connFlags & CONN_KEEP_ALIVE) !== 0;
  return h;
}

/** Lower-cased name of header number `i`. */
export function fieldName(h: MessageHead, i: number): string {
  return h.buf.toString('latin1', h.fields[i * FIELD]!, h.fields[i * FIELD + 3]!).toLowerCase();
}

const S_SIZE = 0;
const S_EXT = 1;
const S_SIZE_LF = 2;
const S_DATA = 3;
const S_DATA_CR = 4;
const S_DATA_LF = 5;
const S_TRAILER_START = 6;
const S_TRAILER = 7;
const S_TRAILER_LF = 8;
const S_END_LF = 9;
const S_DONE = 10;

const MAX_SIZE_DIGITS = 12; // 16^12 bytes = 256 TiB per chunk: plenty, and exact in a double
const MAX_LINE = 4096;

/**
 * Reads a chunked body incrementally and validates its framing. feed()
 * returns how many bytes of the input belong to the body; the caller
 * forwards exactly those bytes (or, with onData, only the payload).
 */
export class ChunkedReader {
  private state = S_SIZE;
  private size = 0;
  private digits = 0;
  private remaining = 0;
  private lineLen = 0;
  private trailerBytes = 0;
  private colon = false;

  constructor(private readonly status: number) {}

  get done(): boolean {
    return this.state === S_DONE;
  }

  private fail(why: string): never {
    throw new HttpError(this.status, `bad chunked encoding: ${why}`);
  }

  /** Consumes buf[start, end); returns the index after the last body byte. */
  feed(buf: Buffer, start: number, end: number, onData?: (b: Buffer) => void): number {
    let i = start;
    while (i < end) {
      switch (this.state) {
        case S_DATA: {
          const n = Math.min(this.remaining, end - i);
          if (onData) onData(buf.subarray(i, i + n));
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = S_DATA_CR;
          continue;
        }
        case S_SIZE: {
          const c = buf[i]!;
          const v = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (v >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) this.fail('chunk size too large');
            this.size = this.size * 16 + v;
          } else if (this.digits === 0) this.fail('chunk size is not a hex number');
          else if (c === 59 /* ; */) {
            this.state = S_EXT;
            this.lineLen = this.digits;
          } else if (c === 13) this.state = S_SIZE_LF;
          else this.fail('unexpected character after the chunk size');
          break;
        }
        case S_EXT: {
          const c = buf[i]!;
          if (c === 13) this.state = S_SIZE_LF;
          else if ((c < 32 && c !== 9) || c === 127) this.fail('control character in a chunk extension');
          else if (++this.lineLen > MAX_LINE) this.fail('chunk extension too long');
          break;
        }
        case S_SIZE_LF:
          if (buf[i] !== 10) this.fail('chunk size line not ended by CRLF');
          if (this.size === 0) this.state = S_TRAILER_START;
          else {
            this.remaining = this.size;
            this.state = S_DATA;
          }
          this.size = 0;
          this.digits = 0;
          break;
        case S_DATA_CR:
          if (buf[i] !== 13) this.fail('chunk data longer than its size');
          this.state = S_DATA_LF;
          break;
        case S_DATA_LF:
          if (buf[i] !== 10) this.fail('chunk data not followed by CRLF');
          this.state = S_SIZE;
          break;
        case S_TRAILER_START: {
          const c = buf[i]!;
          if (c === 13) this.state = S_END_LF;
          else if (c === 32 || c === 9) this.fail('obsolete line folding in the trailer');
          else {
            this.state = S_TRAILER;
            this.colon = c === 58;
            this.lineLen = 1;
            if (c < 32 || c === 127) this.fail('control character in the trailer');
          }
          break;
        }
        case S_TRAILER: {
          const c = buf[i]!;
          if (c === 13) {
            if (!this.colon) this.fail('trailer line without a colon');
            this.state = S_TRAILER_LF;
          } else if ((c < 32 && c !== 9) || c === 127) this.fail('control character in the trailer');
          else {
            if (c === 58) this.colon = true;
            if (++this.trailerBytes > 16 * 1024) this.fail('trailer section too large');
          }
          break;
        }
        case S_TRAILER_LF:
          if (buf[i] !== 10) this.fail('trailer line not ended by CRLF');
          this.state = S_TRAILER_START;
          break;
        case S_END_LF:
          if (buf[i] !== 10) this.fail('last chunk not ended by CRLF');
          this.state = S_DONE;
          return i + 1;
        case S_DONE:
          return i;
      }
      i++;
    }
    return i;
  }
}
