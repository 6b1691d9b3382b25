import { STATUS_CODES } from 'node:http';
import { HangarError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';

/**
 * The proxy's own answers (404, 408, 431, 502, 503, 504...): plain text,
 * one line that says what happened and what to do next, never cached.
 */
function errorHead(status: number, body: string, requestId: string | undefined, connection: string): string {
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    (requestId ? `Fly-Request-Id: ${requestId}\r\n` : '') +
    'Cache-Control: no-store\r\n' +
    connection +
    '\r\n'
  );
}

export const CONNECTION_CLOSE = 'Connection: close\r\n';

/** Head and body of an error answer, as one string (one write). */
export function errorAnswer(status: number, message: string, requestId: string | undefined, connection: string): string {
  const body = message.endsWith('\n') ? message : message + '\n';
  return errorHead(status, body, requestId, connection) + body;
}

/** Status and message for a failure to route: HangarErrors say their own, anything else is a 500. */
export function errorStatus(err: unknown, log: Logger): { status: number; message: string } {
  if (err instanceof HangarError && err.expose) return { status: err.status, message: err.message };
  log.error('proxy: internal error', { err });
  return { status: 500, message: 'the proxy failed to route this request; see the daemon log' };
}

export function noAppAt(host: string | undefined, domain: string, port: number): string {
  return `no app is served at host "${host ?? ''}": use http://<app>.${domain}:${port}/`;
}

export function headersTooLarge(maxHeaderSize: number): string {
  return `request headers are larger than the ${maxHeaderSize} bytes this proxy accepts; send fewer or smaller headers (cookies)`;
}

export function headersTimedOut(headersTimeoutMs: number): string {
  return `the request headers did not arrive within ${headersTimeoutMs / 1000}s`;
}

export function noResponse(where: string, responseTimeoutMs: number): string {
  return `${where} sent no response within ${responseTimeoutMs / 1000}s`;
}

export function malformedRequest(why: string): string {
  return `malformed HTTP request: ${why}`;
}

export function invalidResponse(where: string, why: string): string {
  return `${where} sent an invalid response: ${why}`;
}

export function failedBeforeAnswer(where: string, upgrade: boolean, what: string): string {
  return upgrade ? `${where} failed before completing the upgrade: ${what}` : `${where} failed before answering: ${what}`;
}
