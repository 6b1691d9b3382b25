import { CONNECTION_CLOSE, malformedRequest } from './answers.js';
import type { Exchange } from './exchange.js';
import { downstreamHead, interimHead } from './headers.js';
import { ChunkedReader, HttpError, headEnd, parseResponseHead, type ResponseHead } from './http1.js';
import type { Conn } from './sockio.js';
import { BODY, CHUNKED, CLOSE, DONE, LENGTH, NONE } from './state.js';

/*
 * The bytes of an exchange: the request body out to the machine and the
 * response head and body back, each kept in its framing (counted, chunked
 * and validated, or until close) with back-pressure both ways.
 */

/** Largest response head accepted from a machine. */
const MAX_RESPONSE_HEAD = 64 * 1024;

/**
 * Writes `prefix` (a head, latin1) and `data` with one write call: one
 * syscall and no writev bookkeeping for the common small answer.
 */
function writeJoined(sock: Conn, prefix: Buffer, data: Buffer | null): boolean {
  if (data === null || data.length === 0) return sock.write(prefix);
  return sock.write(Buffer.concat([prefix, data], prefix.length + data.length));
}

/** Request body bytes from the client (possibly followed by a pipelined request). */
export function requestBody(ex: Exchange, buf: Buffer, prefix?: Buffer): void {
  let used: number;
  try {
    if (ex.reqChunks) used = ex.reqChunks.feed(buf, 0, buf.length);
    else used = Math.min(ex.reqLeft, buf.length);
  } catch (err) {
    if (!(err instanceof HttpError)) throw err;
    // Bytes before the bad framing went to the machine; that request is
    // cut, so no part of what follows can be read as another one.
    ex.abortUp();
    if (ex.phase === BODY) ex.destroy();
    else ex.fail(400, malformedRequest(err.message), true);
    return;
  }
  if (ex.reqChunks === null) ex.reqLeft -= used;
  const done = ex.reqChunks ? ex.reqChunks.done : ex.reqLeft === 0;
  if (ex.up && (used > 0 || prefix !== undefined)) {
    const data = used === buf.length ? buf : buf.subarray(0, used);
    if (!(prefix === undefined ? ex.up.conn.write(data) : writeJoined(ex.up.conn, prefix, data))) ex.c.pause();
  }
  if (used < buf.length) {
    // The next (pipelined) request: held until this exchange is over.
    ex.c.buf = buf.subarray(used);
    ex.c.scanned = 0;
  }
  if (done) {
    ex.reqDone = true;
    ex.streaming = false;
    if (ex.phase === DONE) return;
    if (ex.resDone) ex.finish();
  }
}

export function responseHead(ex: Exchange, chunk: Buffer): void {
  let buf = ex.resBuf ? Buffer.concat([ex.resBuf, chunk]) : chunk;
  const c = ex.c;
  for (;;) {
    const end = headEnd(buf, ex.resBuf ? ex.resBuf.length : 0);
    if (end < 0) {
      if (buf.length > MAX_RESPONSE_HEAD) return ex.badResponse('a response head larger than 64 KiB');
      ex.resBuf = buf;
      return;
    }
    ex.resBuf = null;
    let res: ResponseHead;
    try {
      res = parseResponseHead(buf, 0, end, c.ctx.scratchResponse);
    } catch (err) {
      if (err instanceof HttpError) return ex.badResponse(err.message);
      throw err;
    }
    const rest = end === buf.length ? null : buf.subarray(end);
    if (res.status === 101) {
      if (ex.head.upgrade === undefined) return ex.badResponse('101 Switching Protocols without an Upgrade request');
      return ex.tunnel(res, rest);
    }
    if (res.status < 200) {
      // Interim answers (100 Continue, 103) are passed on; the final one follows.
      if (ex.head.minor === 1) c.conn.write(interimHead(res, undefined));
      ex.interim = true;
      if (!rest) return;
      buf = rest;
      continue;
    }
    const m = ex.head.method;
    if (m === 'HEAD' || res.status === 204 || res.status === 304) ex.mode = NONE;
    else if (res.chunked) ex.mode = CHUNKED;
    else if (res.transferEncoding || res.contentLength < 0) ex.mode = CLOSE;
    else if (res.contentLength === 0) ex.mode = NONE;
    else ex.mode = LENGTH;
    // A declined upgrade is relayed and the connection then closed (the
    // client may already be sending the other protocol).
    if (ex.mode === CLOSE || ex.head.upgrade !== undefined) ex.closeAfter = true;
    let framing = '';
    if (ex.mode === CHUNKED) {
      if (ex.head.minor === 0) {
        ex.decode = true;
        ex.closeAfter = true;
      } else framing = 'Transfer-Encoding: chunked\r\n';
    }
    if (ex.mode === LENGTH) ex.resLeft = res.contentLength;
    if (ex.mode === CHUNKED) ex.resChunks = new ChunkedReader(502);
    framing += ex.closeAfter || c.ended ? CONNECTION_CLOSE : c.ctx.keepAliveHeader;
    ex.phase = BODY;
    ex.resKeepAlive = res.keepAlive;
    if (ex.mode === LENGTH && rest !== null && rest.length <= ex.resLeft) {
      // The usual case: head and (first part of the) body in one buffer.
      const ok = c.conn.write(downstreamHead(res, ex.idNumber, framing, rest));
      ex.resLeft -= rest.length;
      if (!ok) ex.up?.conn.pause();
      if (ex.resLeft === 0) {
        ex.resDone = true;
        if (ex.reqDone) ex.finish();
      }
      return;
    }
    const text = downstreamHead(res, ex.idNumber, framing);
    if (rest === null || ex.mode === NONE) {
      c.conn.write(text);
      if (ex.mode === NONE) {
        if (rest) ex.tainted = true;
        ex.resDone = true;
        if (ex.reqDone) ex.finish();
      }
      return;
    }
    responseBody(ex, rest, text);
    return;
  }
}

export function responseBody(ex: Exchange, buf: Buffer, prefix?: Buffer): void {
  const sock = ex.c.conn;
  let ok = true;
  if (prefix !== undefined && (ex.mode !== LENGTH && (ex.mode !== CHUNKED || ex.decode))) {
    sock.write(prefix);
    prefix = undefined;
  }
  switch (ex.mode) {
    case LENGTH: {
      const n = Math.min(ex.resLeft, buf.length);
      if (n < buf.length) ex.tainted = true;
      const data = n === buf.length ? buf : buf.subarray(0, n);
      ok = prefix === undefined ? sock.write(data) : writeJoined(sock, prefix, data);
      ex.resLeft -= n;
      if (ex.resLeft === 0) ex.resDone = true;
      break;
    }
    case CHUNKED: {
      let used: number;
      try {
        used = ex.decode
          ? ex.resChunks!.feed(buf, 0, buf.length, (d) => {
              ok = sock.write(d) && ok;
            })
          : ex.resChunks!.feed(buf, 0, buf.length);
      } catch (err) {
        if (prefix !== undefined) return ex.badResponse((err as Error).message);
        // The client already has the status line: all that is left is to cut it.
        ex.destroy();
        return;
      }
      if (!ex.decode) {
        const data = used === buf.length ? buf : buf.subarray(0, used);
        if (prefix !== undefined) ok = writeJoined(sock, prefix, data);
        else if (used > 0) ok = sock.write(data);
      }
      if (used < buf.length) ex.tainted = true;
      if (ex.resChunks!.done) ex.resDone = true;
      break;
    }
    case CLOSE:
      ok = sock.write(buf);
      break;
    default:
      ex.tainted = true;
  }
  if (!ok) ex.up?.conn.pause();
  if (ex.resDone) {
    if (ex.reqDone) ex.finish();
    // Else the machine answered before the whole request body arrived:
    // keep forwarding it; finish() runs when it is complete.
  }
}
