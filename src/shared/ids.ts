import { randomBytes } from 'node:crypto';

/** Fly-style opaque id: 14 lowercase hex characters. */
export function newId(): string {
  return randomBytes(7).toString('hex');
}

export function nowIso(): string {
  return new Date().toISOString();
}
