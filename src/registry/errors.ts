import type { IncomingMessage, ServerResponse } from 'node:http';
import { HangarError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';

/** Error codes of the OCI Distribution Spec (section "Error Codes"). */
export type OciCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  /** Not in the spec's list; CNCF distribution's code when an upstream (proxy mode) cannot be reached. */
  | 'UNAVAILABLE';

const STATUS: Record<OciCode, number> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 415,
  TOOMANYREQUESTS: 429,
  UNAVAILABLE: 503,
};

/** A registry error: OCI code, HTTP status and the headers the spec asks for (challenge, Range). */
export class RegistryError extends HangarError {
  readonly headers: Record<string, string>;
  constructor(code: OciCode, message: string, opts: { status?: number; detail?: unknown; headers?: Record<string, string> } = {}) {
    super(code, message, { status: opts.status ?? STATUS[code], detail: opts.detail, expose: true });
    this.headers = opts.headers ?? {};
  }
}

export const regErr = (code: OciCode, message: string, opts?: { status?: number; detail?: unknown; headers?: Record<string, string> }) =>
  new RegistryError(code, message, opts);

function mapGeneric(err: HangarError): OciCode {
  switch (err.code) {
    case 'UNAUTHORIZED':
      return 'UNAUTHORIZED';
    case 'FORBIDDEN':
      return 'DENIED';
    case 'NOT_FOUND':
      return 'NAME_UNKNOWN';
    case 'TOO_LARGE':
      return 'SIZE_INVALID';
    default:
      return 'UNSUPPORTED';
  }
}

/**
 * Serialise any thrown value as the spec's `{"errors":[...]}` body. Internal
 * faults are a bare 500 and a log line. When the request body was not read
 * (e.g. a refused 200 MB upload) the connection is closed rather than drained.
 */
export function sendRegistryError(req: IncomingMessage, res: ServerResponse, err: unknown, log: Logger): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string> = {};
  const bodyPending = !req.complete && (Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined);
  if (bodyPending) headers.connection = 'close';
  if (err instanceof HangarError && err.expose) {
    const code = err instanceof RegistryError ? err.code : mapGeneric(err);
    const body = JSON.stringify({ errors: [{ code, message: err.message, detail: err.detail ?? null }] });
    Object.assign(headers, err instanceof RegistryError ? err.headers : {}, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
    });
    res.writeHead(err.status, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  } else {
    log.error('unhandled error in registry request', { method: req.method, url: req.url, err });
    res.writeHead(500, { ...headers, 'content-length': '0' });
    res.end();
  }
  if (bodyPending) req.resume();
}
