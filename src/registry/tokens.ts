import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

export const SERVICE = 'hangar';
export type Action = 'pull' | 'push' | 'delete';
export const ALL_ACTIONS: readonly Action[] = ['pull', 'push', 'delete'];

/** One entry of a token's `access` claim (the Docker token spec's shape). */
export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export interface RegistryClaims {
  iss: string;
  aud: string;
  sub: string;
  /** The organization of the API token the grant came from; null for the admin token. */
  org: string | null;
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  access: Access[];
}

const b64 = (x: Buffer | string) => Buffer.from(x).toString('base64url');
const HEADER = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));

/**
 * Short-lived registry tokens: HS256 JWTs signed with a random key kept in
 * the data dir (0600). They are only ever verified by this daemon, so a
 * symmetric key is enough.
 */
export class TokenSigner {
  private readonly key: Buffer;

  constructor(keyPath: string) {
    this.key = loadOrCreateKey(keyPath);
  }

  sign(claims: RegistryClaims): string {
    const body = `${HEADER}.${b64(JSON.stringify(claims))}`;
    return `${body}.${createHmac('sha256', this.key).update(body).digest('base64url')}`;
  }

  /** The claims of a token this daemon signed, 'expired', or undefined (not ours / tampered). */
  verify(token: string, now = Date.now()): RegistryClaims | 'expired' | undefined {
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== HEADER) return undefined;
    const expected = createHmac('sha256', this.key).update(`${parts[0]}.${parts[1]}`).digest();
    const got = Buffer.from(parts[2]!, 'base64url');
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) return undefined;
    let claims: RegistryClaims;
    try {
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as RegistryClaims;
    } catch {
      return undefined;
    }
    if (claims.aud !== SERVICE || !Array.isArray(claims.access)) return undefined;
    const sec = now / 1000;
    if (typeof claims.exp !== 'number' || claims.exp <= sec) return 'expired';
    if (typeof claims.nbf === 'number' && claims.nbf > sec + 60) return undefined;
    return claims;
  }
}

export function looksLikeJwt(s: string): boolean {
  return s.startsWith(HEADER + '.');
}

function loadOrCreateKey(path: string): Buffer {
  try {
    const k = readFileSync(path);
    if (k.length >= 32) return k;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const key = randomBytes(32);
  try {
    writeFileSync(path, key, { mode: 0o600, flag: 'wx' });
    return key;
  } catch (e) {
    // Another process created it between our read and write: use theirs.
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(path);
    throw e;
  }
}

/**
 * Parse `scope` parameters: `repository:<name>:<actions>` (several may be
 * space-separated or repeated), `registry:catalog:*`.
 */
export function parseScopes(values: string[]): Access[] {
  const out: Access[] = [];
  for (const v of values) {
    for (const s of v.split(' ').filter(Boolean)) {
      const first = s.indexOf(':');
      const last = s.lastIndexOf(':');
      if (first < 0 || last === first) continue;
      const type = s.slice(0, first).replace(/\(.*\)$/, '');
      const name = s.slice(first + 1, last);
      const actions = s.slice(last + 1).split(',').filter(Boolean);
      const existing = out.find((a) => a.type === type && a.name === name);
      if (existing) existing.actions = [...new Set([...existing.actions, ...actions])];
      else out.push({ type, name, actions });
    }
  }
  return out;
}
