/**
 * One error type for the whole of Hangar.
 *
 * `code` is a stable, machine-readable string (tests and API clients match on
 * it). `message` is for humans and must say what happened and what to do next.
 * `status` is the HTTP status an API answers with. `expose` is false for
 * internal faults: their message goes to the daemon log, never to a client.
 */
export type ErrorCode =
  | 'BAD_REQUEST'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'TOO_LARGE'
  | 'TIMEOUT'
  | 'UNAVAILABLE'
  | 'INTERNAL'
  | (string & {});

export interface HangarErrorOptions {
  status?: number;
  cause?: unknown;
  /** false: an internal fault whose details must not reach a client. */
  expose?: boolean;
  /** Extra structured data for API bodies (never secrets). */
  detail?: unknown;
}

const defaultStatus: Record<string, number> = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  TOO_LARGE: 413,
  TIMEOUT: 408,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

export class HangarError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly expose: boolean;
  readonly detail: unknown;

  constructor(code: ErrorCode, message: string, options: HangarErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HangarError';
    this.code = code;
    this.status = options.status ?? defaultStatus[code] ?? 400;
    this.expose = options.expose ?? this.status < 500;
    this.detail = options.detail;
  }
}

export const badRequest = (message: string, detail?: unknown) =>
  new HangarError('BAD_REQUEST', message, { detail });
export const notFound = (message: string) => new HangarError('NOT_FOUND', message);
export const conflict = (message: string) => new HangarError('CONFLICT', message);
export const forbidden = (message: string) => new HangarError('FORBIDDEN', message);
export const unauthorized = (message: string) => new HangarError('UNAUTHORIZED', message);

export function isHangarError(err: unknown): err is HangarError {
  return err instanceof HangarError;
}

/** A one-line, user-facing description of any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof HangarError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
