import type { ServerResponse } from 'node:http';
import { HangarError } from '../shared/errors.js';
import { sendJson } from '../http/index.js';
import type { Logger } from '../shared/log.js';

/**
 * Fly's API error shape: `{"error": "..."}`. Unknown errors are a bare 500
 * with a log line: internals never reach the client.
 */
export function sendApiError(res: ServerResponse, err: unknown, log: Logger): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err instanceof HangarError && err.expose) {
    sendJson(res, err.status, { error: err.message, code: err.code, ...(err.detail ? { details: err.detail } : {}) });
    return;
  }
  log.error('unhandled error in API request', { err });
  sendJson(res, err instanceof HangarError ? err.status : 500, { error: 'internal error; see the daemon log' });
}
