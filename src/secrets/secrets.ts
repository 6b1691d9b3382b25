import type { Store } from '../store/index.js';
import type { Logger } from '../shared/log.js';
import { HangarError, badRequest, notFound } from '../shared/errors.js';
import { nowIso } from '../shared/ids.js';
import { parseInput } from '../shared/validate.js';
import { SecretKey } from './crypto.js';
import { MAX_APP_BYTES, MAX_SECRETS_PER_APP, secretName, secretValue } from './limits.js';

const migrations = [
  `CREATE TABLE secrets (
     app TEXT NOT NULL,
     name TEXT NOT NULL,
     sealed BLOB NOT NULL,
     digest TEXT NOT NULL,
     bytes INTEGER NOT NULL,
     version INTEGER NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     PRIMARY KEY (app, name)
   );
   CREATE TABLE secret_versions (
     app TEXT PRIMARY KEY,
     version INTEGER NOT NULL,
     deployed_version INTEGER NOT NULL,
     updated_at TEXT NOT NULL
   );`,
];

export interface SecretInfo {
  name: string;
  digest: string;
  /** deployed: running machines have it; staged: set with --stage, not yet rolled out. */
  status: 'deployed' | 'staged';
  created_at: string;
  updated_at: string;
}

export interface SecretsListing {
  secrets: SecretInfo[];
  version: number;
  deployed_version: number;
}

export interface RestartOutcome {
  restarted: string[];
  failed: { id: string; error: string }[];
}

export interface UpdateResult extends SecretsListing {
  staged: boolean;
  restarted: string[];
  failed: { id: string; error: string }[];
}

export interface SecretsOptions {
  store: Store;
  dataDir: string;
  log: Logger;
  /** Restart the app's started machines so they boot with the new values. */
  restartApp?(app: string): Promise<RestartOutcome>;
}

interface Row {
  app: string;
  name: string;
  sealed: Buffer;
  digest: string;
  bytes: number;
  version: number;
  created_at: string;
  updated_at: string;
}

/** Minimum length of a value (or of one of its lines) that log redaction replaces. */
const MIN_REDACT = 4;
export const REDACTED = '[REDACTED]';

/**
 * App secrets: sealed at rest, listed by name and digest only, handed in
 * clear only to the machine boot path (`valuesFor`) and the log redactor.
 */
export class Secrets {
  private key: SecretKey | undefined;
  private readonly redactCache = new Map<string, string[]>();

  constructor(private readonly o: SecretsOptions) {
    o.store.migrate('secrets', migrations);
    const count = (o.store.db.prepare('SELECT COUNT(*) AS n FROM secrets').get() as { n: number }).n;
    this.key = SecretKey.load(o.dataDir, count === 0);
    if (!this.key) o.log.error('secrets.key is missing but sealed secrets exist; restore the key file from a backup', { path: SecretKey.path(o.dataDir) });
  }

  private get db() {
    return this.o.store.db;
  }

  private requireKey(): SecretKey {
    if (!this.key) {
      // A new key cannot open the old rows: refuse instead of silently losing them.
      throw new HangarError('SECRETS_KEY_MISSING', `the secrets key ${SecretKey.path(this.o.dataDir)} is missing; restore it from a backup and restart the daemon`, { status: 503 });
    }
    return this.key;
  }

  private aad(app: string, name: string): string {
    return `hangar-secret\0${app}\0${name}`;
  }

  private versions(app: string): { version: number; deployed_version: number } {
    return (
      (this.db.prepare('SELECT version, deployed_version FROM secret_versions WHERE app = ?').get(app) as
        | { version: number; deployed_version: number }
        | undefined) ?? { version: 0, deployed_version: 0 }
    );
  }

  list(app: string): SecretsListing {
    const v = this.versions(app);
    const rows = this.db.prepare('SELECT name, digest, version, created_at, updated_at FROM secrets WHERE app = ? ORDER BY name').all(app) as Row[];
    return {
      version: v.version,
      deployed_version: v.deployed_version,
      secrets: rows.map((r) => ({
        name: r.name,
        digest: r.digest,
        status: r.version > v.deployed_version ? 'staged' : 'deployed',
        created_at: r.created_at,
        updated_at: r.updated_at,
      })),
    };
  }

  get(app: string, name: string): SecretInfo {
    const found = this.list(app).secrets.find((s) => s.name === name);
    if (!found) throw notFound(`secret ${name} is not set on app ${app}; list them with \`hangar secrets list -a ${app}\``);
    return found;
  }

  /**
   * Set (string) and unset (null) several secrets in one all-or-nothing
   * change, then restart the app's started machines unless `stage`. An
   * empty change without `stage` is a deploy: it rolls out staged changes.
   */
  async update(app: string, changes: Record<string, string | null>, opts: { stage?: boolean } = {}): Promise<UpdateResult> {
    const names = Object.keys(changes);
    for (const name of names) {
      parseInput(secretName, name, `secret name "${name.slice(0, 64)}"`);
      const value = changes[name];
      // The value itself never goes into the message.
      if (value !== null && value !== undefined) parseInput(secretValue, value, `value of secret ${name}`);
      else if (value === undefined) throw badRequest(`secret ${name}: give a string value, or null to unset it`);
    }
    const key = names.length ? this.requireKey() : undefined;
    this.db.transaction(() => {
      if (!names.length) return;
      const now = nowIso();
      const cur = this.versions(app);
      const version = cur.version + 1;
      for (const name of names) {
        const value = changes[name];
        if (value === null) {
          this.db.prepare('DELETE FROM secrets WHERE app = ? AND name = ?').run(app, name);
          continue;
        }
        this.db
          .prepare(
            `INSERT INTO secrets (app, name, sealed, digest, bytes, version, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (app, name) DO UPDATE SET sealed = excluded.sealed, digest = excluded.digest,
               bytes = excluded.bytes, version = excluded.version, updated_at = excluded.updated_at`,
          )
          .run(app, name, key!.seal(value!, this.aad(app, name)), key!.digest(value!), Buffer.byteLength(value!), version, now, now);
      }
      const totals = this.db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS bytes FROM secrets WHERE app = ?').get(app) as { n: number; bytes: number };
      // Throwing inside the transaction rolls the whole change back.
      if (totals.n > MAX_SECRETS_PER_APP) throw badRequest(`app ${app} would have ${totals.n} secrets; the limit is ${MAX_SECRETS_PER_APP}`);
      if (totals.bytes > MAX_APP_BYTES) throw badRequest(`app ${app}'s secrets would total ${totals.bytes} bytes; the limit is ${MAX_APP_BYTES} (they become the app's environment)`);
      this.db
        .prepare(
          `INSERT INTO secret_versions (app, version, deployed_version, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (app) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`,
        )
        .run(app, version, cur.deployed_version, now);
    })();
    this.redactCache.delete(app);
    if (opts.stage) return { ...this.list(app), staged: true, restarted: [], failed: [] };
    return this.deploy(app);
  }

  /** Roll out the current secrets: restart the app's started machines. */
  async deploy(app: string): Promise<UpdateResult> {
    const { version } = this.versions(app);
    const outcome = (await this.o.restartApp?.(app)) ?? { restarted: [], failed: [] };
    if (!outcome.failed.length) {
      this.db
        .prepare(
          `INSERT INTO secret_versions (app, version, deployed_version, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (app) DO UPDATE SET deployed_version = MAX(deployed_version, excluded.deployed_version)`,
        )
        .run(app, version, version, nowIso());
    }
    return { ...this.list(app), staged: false, ...outcome };
  }

  /** Clear values for a machine boot. Never log or return these. */
  valuesFor(app: string): Record<string, string> {
    const rows = this.db.prepare('SELECT name, sealed FROM secrets WHERE app = ? ORDER BY name').all(app) as Row[];
    if (!rows.length) return {};
    const key = this.requireKey();
    // fromEntries defines own properties, so even a name like __proto__ stays a plain entry.
    return Object.fromEntries(rows.map((r) => [r.name, key.open(r.sealed, this.aad(app, r.name))]));
  }

  /** Replace every known secret value of the app in a log line. */
  redact(app: string, line: string): string {
    let needles = this.redactCache.get(app);
    if (!needles) {
      needles = [];
      try {
        for (const value of Object.values(this.valuesFor(app))) {
          if (value.length >= MIN_REDACT) needles.push(value);
          // Log lines are split on newlines: multi-line values (PEM keys) are
          // matched line by line too.
          for (const part of value.split(/\r?\n/)) if (part.trim().length >= MIN_REDACT && part !== value) needles.push(part.trim());
        }
      } catch {
        // Without the key nothing can be matched; lines pass through.
      }
      needles.sort((a, b) => b.length - a.length);
      this.redactCache.set(app, needles);
    }
    let out = line;
    for (const n of needles) if (out.includes(n)) out = out.split(n).join(REDACTED);
    return out;
  }

  deleteApp(app: string): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM secrets WHERE app = ?').run(app);
      this.db.prepare('DELETE FROM secret_versions WHERE app = ?').run(app);
    })();
    this.redactCache.delete(app);
  }
}
