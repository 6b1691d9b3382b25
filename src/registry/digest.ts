import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { regErr } from './errors.js';

export type DigestAlgorithm = 'sha256' | 'sha512';

export interface Digest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** `algorithm:hex`, the canonical string form. */
  value: string;
}

const GRAMMAR = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;
const HEX_LEN: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

export function parseDigest(s: string): Digest {
  const m = GRAMMAR.exec(s);
  if (!m) throw regErr('DIGEST_INVALID', `${JSON.stringify(s.slice(0, 200))} is not a digest: use sha256:<64 hex> or sha512:<128 hex>`);
  const algorithm = m[1]!;
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw regErr('DIGEST_INVALID', `unsupported digest algorithm "${algorithm}": this registry accepts sha256 and sha512`, {
      detail: { algorithm, reason: 'UNSUPPORTED' },
    });
  }
  const hex = m[2]!;
  if (hex.length !== HEX_LEN[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw regErr('DIGEST_INVALID', `${algorithm} digest must be ${HEX_LEN[algorithm]} lowercase hex characters`);
  }
  return { algorithm, hex, value: s };
}

export function isDigestRef(ref: string): boolean {
  return ref.includes(':');
}

export function digestOf(data: Buffer, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** Hash a whole file (used when a session's streaming hash is not the one asked for, or after a restart). */
export async function hashFile(path: string, algorithm: DigestAlgorithm, end?: number): Promise<Hash> {
  const h = createHash(algorithm);
  if (end === 0) return h;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20, end: end === undefined ? undefined : end - 1 })) {
    h.update(chunk as Buffer);
  }
  return h;
}
