import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { HangarError } from '../shared/errors.js';

const KEY_FILE = 'secrets.key';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 1;

/**
 * The data-dir master key for secrets: 32 random bytes in a 0600 file.
 * Values are sealed with AES-256-GCM; the app and name are bound in as
 * additional data so a sealed value cannot be moved to another row.
 */
export class SecretKey {
  private constructor(
    private readonly key: Buffer,
    private readonly digestKey: Buffer,
  ) {}

  static path(dataDir: string): string {
    return join(dataDir, KEY_FILE);
  }

  /** Loads the key; creates it when `mayCreate` (no sealed values exist yet). */
  static load(dataDir: string, mayCreate: boolean): SecretKey | undefined {
    const path = SecretKey.path(dataDir);
    if (!existsSync(path)) {
      if (!mayCreate) return undefined;
      const tmp = `${path}.tmp`;
      // 0600 from the first byte: the key is never readable by others, even briefly.
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, randomBytes(32));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
    }
    const mode = statSync(path).mode & 0o077;
    if (mode !== 0) {
      throw new HangarError('INSECURE_KEY_FILE', `${path} is readable by group or others; run \`chmod 600 ${path}\` and restart the daemon`, { status: 500 });
    }
    const key = readFileSync(path);
    if (key.length !== 32) {
      throw new HangarError('BAD_KEY_FILE', `${path} is not a 32-byte key; restore it from a backup (secrets sealed with another key cannot be read)`, { status: 500 });
    }
    return new SecretKey(key, createHmac('sha256', key).update('hangar secret digest v1').digest());
  }

  seal(value: string, aad: string): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(Buffer.from(aad));
    const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.from([VERSION]), nonce, body, cipher.getAuthTag()]);
  }

  open(sealed: Buffer, aad: string): string {
    if (sealed.length < 1 + NONCE_BYTES + TAG_BYTES || sealed[0] !== VERSION) {
      throw new HangarError('SECRET_CORRUPT', 'a stored secret is corrupt; set it again with `hangar secrets set`', { status: 500 });
    }
    const nonce = sealed.subarray(1, 1 + NONCE_BYTES);
    const tag = sealed.subarray(sealed.length - TAG_BYTES);
    const body = sealed.subarray(1 + NONCE_BYTES, sealed.length - TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.key, nonce);
    decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
    } catch {
      throw new HangarError('SECRET_CORRUPT', 'a stored secret cannot be decrypted with this data dir\'s key (was secrets.key replaced?); set it again with `hangar secrets set`', { status: 500 });
    }
  }

  /**
   * A short fingerprint to tell values apart in `secrets list`. Keyed, so a
   * copy of the database alone does not let anyone test guesses offline.
   */
  digest(value: string): string {
    return createHmac('sha256', this.digestKey).update(value, 'utf8').digest('hex').slice(0, 16);
  }
}
