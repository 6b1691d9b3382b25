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

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
/** name ":" OWS value OWS, value without control characters (HT allowed). */
const FIELD = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*((?:[\x21-\x7e\x80-\xff](?:[\t \x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?)[ \t]*$/;
const DIGITS = /^\d{1,15}$/;

const CRLFCRLF = Buffer.from('\r\n\r\n');

export interface MessageHead {
  /** Header names as sent and values, flat: [name, value, name, value, ...]. */
  raw: string[];
  /** Lower-cased names, one per header (raw.length / 2). */
  lower: string[];
  /** Content-Length, or -1 when absent. */
  contentLength: number;
  /** Transfer-Encoding ends in chunked. */
  chunked: boolean;
  /** Lower-cased tokens of the Connection header(s). */
  connection: string[] | undefined;
  /** HTTP/1.x minor version. */
  minor: number;
}

export interface RequestHead extends MessageHead {
  method: string;
  target: string;
  host: string | undefined;
  /** The Upgrade header's value when Connection also lists `upgrade`. */
  upgrade: string | undefined;
  /** The client wants the connection closed after this exchange. */
  close: boolean;
}

export interface ResponseHead extends MessageHead {
  status: number;
  reason: string;
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
  const i = buf.indexOf(CRLFCRLF, Math.max(0, from - 3));
  return i < 0 ? -1 : i + 4;
}

/** Leading empty lines before a request line (RFC 9112 §2.2: may be ignored). */
export function skipEmptyLines(buf: Buffer): number {
  let i = 0;
  while (i + 1 < buf.length && buf[i] === 13 && buf[i + 1] === 10) i += 2;
  return i;
}

function lines(buf: Buffer, start: number, end: number): string[] {
  // latin1 keeps every byte as one char, so values are forwarded byte-exact.
  const text = buf.toString("latin1", start, end - 4);
  const ls = text.split('\r\n');
  for (let i = 0; i < ls.length; i++) {
    const l = ls[i]!;
    if (l.includes('\r') || l.includes('\n')) throw new HttpError(400, 'bare CR or LF in the request head; lines must end with CRLF');
  }
  return ls;
}

function connectionTokens(value: string, into: string[] | undefined): string[] {
  const out = into ?? [];
  for (const t of value.split(',')) {
    const k = t.trim().toLowerCase();
    if (k) out.push(k);
  }
  return out;
}

/** Parses the fields after the start line into `h`; `what` names the message in errors. */
function fields(ls: string[], h: MessageHead, status: number, what: string): { te: string | undefined; host: string | undefined; hosts: number; upgrade: string | undefined } {
  let te: string | undefined;
  let host: string | undefined;
  let hosts = 0;
  let upgrade: string | undefined;
  let clSeen = false;
  for (let i = 1; i < ls.length; i++) {
    const line = ls[i]!;
    const c = line.charCodeAt(0);
    if (c === 32 || c === 9) throw new HttpError(status, `obsolete line folding (a header line starting with whitespace) in the ${what} head`);
    const m = FIELD.exec(line);
    if (!m) throw new HttpError(status, `malformed header line in the ${what} head: ${JSON.stringify(line.slice(0, 60))}`);
    const name = m[1]!;
    const value = m[2]!;
    const lower = name.toLowerCase();
    h.raw.push(name, value);
    h.lower.push(lower);
    switch (lower) {
      case 'content-length': {
        if (!DIGITS.test(value)) throw new HttpError(status, `invalid Content-Length ${JSON.stringify(value.slice(0, 30))} in the ${what}`);
        const n = Number(value);
        if (clSeen && n !== h.contentLength) throw new HttpError(status, `conflicting Content-Length headers in the ${what}`);
        if (clSeen && status === 400) throw new HttpError(400, 'more than one Content-Length header in the request');
        clSeen = true;
        h.contentLength = n;
        break;
      }
      case 'transfer-encoding':
        if (te !== undefined && status === 400) throw new HttpError(400, 'more than one Transfer-Encoding header in the request');
        te = te === undefined ? value : `${te}, ${value}`;
        break;
      case 'connection':
        h.connection = connectionTokens(value, h.connection);
        break;
      case 'host':
        hosts++;
        host = value;
        break;
      case 'upgrade':
        upgrade = value;
        break;
    }
  }
  return { te, host, hosts, upgrade };
}

/**
 * Parses a request head in buf[start, end) (end from headEnd()). Throws
 * HttpError (400/501) for anything malformed or ambiguous.
 */
export function parseRequestHead(buf: Buffer, start: number, end: number): RequestHead {
  const ls = lines(buf, start, end);
  const rl = REQUEST_LINE.exec(ls[0]!);
  if (!rl) throw new HttpError(400, `malformed request line ${JSON.stringify(ls[0]!.slice(0, 60))}; expected "METHOD /path HTTP/1.1"`);
  const h: RequestHead = {
    method: rl[1]!,
    target: rl[2]!,
    minor: rl[3] === '1' ? 1 : 0,
    raw: [],
    lower: [],
    contentLength: -1,
    chunked: false,
    connection: undefined,
    host: undefined,
    upgrade: undefined,
    close: false,
  };
  const f = fields(ls, h, 400, 'request');
  if (f.hosts > 1) throw new HttpError(400, 'more than one Host header in the request');
  if (f.hosts === 0 && h.minor === 1) throw new HttpError(400, 'HTTP/1.1 request without a Host header');
  h.host = f.host;
  if (f.te !== undefined) {
    if (h.contentLength >= 0) throw new HttpError(400, 'request has both Content-Length and Transfer-Encoding; send only one');
    if (h.minor === 0) throw new HttpError(400, 'Transfer-Encoding in an HTTP/1.0 request');
    if (f.te.trim().toLowerCase() !== 'chunked') throw new HttpError(501, `request Transfer-Encoding ${JSON.stringify(f.te.slice(0, 40))} is not supported; use chunked`);
    h.chunked = true;
  }
  if (h.method === 'CONNECT') throw new HttpError(501, 'CONNECT is not supported by this proxy');
  const conn = h.connection;
  if (f.upgrade !== undefined && conn?.includes('upgrade')) h.upgrade = f.upgrade;
  h.close = h.minor === 0 ? !conn?.includes('keep-alive') : (conn?.includes('close') ?? false);
  return h;
}

/** Parses a response head from a machine. Throws HttpError (502) when malformed. */
export function parseResponseHead(buf: Buffer, start: number, end: number): ResponseHead {
  let ls: string[];
  try {
    ls = lines(buf, start, end);
  } catch {
    throw new HttpError(502, 'bare CR or LF in the response head');
  }
  const sl = STATUS_LINE.exec(ls[0]!);
  if (!sl) throw new HttpError(502, `malformed status line ${JSON.stringify(ls[0]!.slice(0, 60))}`);
  const h: ResponseHead = {
    status: Number(sl[2]),
    reason: sl[3] ?? '',
    minor: sl[1] === '1' ? 1 : 0,
    raw: [],
    lower: [],
    contentLength: -1,
    chunked: false,
    transferEncoding: false,
    connection: undefined,
    keepAlive: false,
  };
  const f = fields(ls, h, 502, 'response');
  if (f.te !== undefined) {
    h.transferEncoding = true;
    const codings = f.te.split(',');
    h.chunked = codings[codings.length - 1]!.trim().toLowerCase() === 'chunked';
    // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3); the
    // length is then not forwarded.
    h.contentLength = -1;
  }
  const conn = h.connection;
  h.keepAlive = h.minor === 1 ? !conn?.includes('close') : (conn?.includes('keep-alive') ?? false);
  return h;
}

export function isToken(s: string): boolean {
  return TOKEN.test(s);
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
