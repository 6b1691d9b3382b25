import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { HangarError } from '../shared/errors.js';
import { normalisePypiName } from '../sbom/purl.js';
import type { OsvRange } from './osv.js';
import type { Severity } from './severity.js';

/** Ordered schema migrations; PRAGMA user_version records how many have run. */
const MIGRATIONS: string[] = [
  `CREATE TABLE advisories (
     id TEXT PRIMARY KEY,
     modified TEXT NOT NULL,
     summary TEXT NOT NULL,
     aliases TEXT NOT NULL,
     severity TEXT NOT NULL,
     score REAL,
     source TEXT NOT NULL
   );
   CREATE TABLE affected (
     advisory_id TEXT NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
     ecosystem TEXT NOT NULL,
     name TEXT NOT NULL,
     severity TEXT NOT NULL,
     score REAL,
     ranges TEXT NOT NULL,
     versions TEXT NOT NULL
   );
   CREATE INDEX affected_lookup ON affected(ecosystem, name);
   CREATE INDEX affected_advisory ON affected(advisory_id);
   CREATE TABLE aliases (
     alias TEXT NOT NULL,
     advisory_id TEXT NOT NULL REFERENCES advisories(id) ON DELETE CASCADE
   );
   CREATE INDEX aliases_alias ON aliases(alias);
   CREATE INDEX aliases_advisory ON aliases(advisory_id);
   CREATE TABLE imports (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     source TEXT NOT NULL,
     imported_at TEXT NOT NULL,
     records INTEGER NOT NULL,
     withdrawn INTEGER NOT NULL,
     skipped INTEGER NOT NULL
   );`,
  `CREATE TABLE ecosystems (ecosystem TEXT PRIMARY KEY);
   INSERT OR IGNORE INTO ecosystems SELECT DISTINCT ecosystem FROM affected;`,
];

export const VULNDB_SCHEMA_VERSION = MIGRATIONS.length;

/** Package names as the feeds key them: PyPI names are PEP 503-normalised, others exact. */
export function nameKey(ecosystem: string, name: string): string {
  return ecosystem === 'PyPI' ? normalisePypiName(name) : name;
}

export interface AdvisoryRow {
  id: string;
  summary: string;
  aliases: string[];
  severity: Severity;
  score: number | null;
}

export interface AffectedRow {
  advisory: AdvisoryRow;
  ecosystem: string;
  severity: Severity;
  score: number | null;
  ranges: OsvRange[];
  versions: string[];
}

export interface VulnDbStats {
  advisories: number;
  ecosystems: string[];
  lastImport?: { source: string; importedAt: string; records: number };
}

/** The OSV vulnerability database: one SQLite file, indexed by ecosystem + package name. */
export class VulnDb {
  readonly db: Database.Database;
  importing = false;
  /** Prepared once: a scan runs these for every package. */
  private readonly stmts = new Map<string, Database.Statement>();

  private constructor(db: Database.Database) {
    this.db = db;
  }

  static open(path: string): VulnDb {
    mkdirSync(dirname(path), { recursive: true });
    let db: Database.Database | undefined;
    try {
      db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      const v = db.pragma('user_version', { simple: true }) as number;
      if (v > MIGRATIONS.length) {
        throw new HangarError('VULNDB_TOO_NEW', `vulnerability database ${path} has schema version ${v}, newer than this Hangar understands (${MIGRATIONS.length}); upgrade Hangar or delete the file and run "hangar vulndb update" again`);
      }
      for (let i = v; i < MIGRATIONS.length; i++) {
        db.transaction(() => {
          db!.exec(MIGRATIONS[i]!);
          db!.pragma(`user_version = ${i + 1}`);
        })();
      }
      return new VulnDb(db);
    } catch (e) {
      db?.close();
      if (e instanceof HangarError) throw e;
      throw new HangarError('VULNDB_CORRUPT', `vulnerability database ${path} cannot be opened (${(e as Error).message}); delete it and run "hangar vulndb update" again`, { status: 500, cause: e });
    }
  }

  close(): void {
    this.db.close();
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  stats(): VulnDbStats {
    const advisories = (this.db.prepare('SELECT count(*) AS n FROM advisories').get() as { n: number }).n;
    const ecosystems = (this.db.prepare('SELECT ecosystem FROM ecosystems ORDER BY ecosystem').all() as Array<{ ecosystem: string }>).map((r) => r.ecosystem);
    const last = this.db.prepare('SELECT source, imported_at AS importedAt, records FROM imports ORDER BY id DESC LIMIT 1').get() as VulnDbStats['lastImport'];
    return { advisories, ecosystems, ...(last ? { lastImport: last } : {}) };
  }

  private stmt(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  hasEcosystem(ecosystem: string): boolean {
    return this.stmt('SELECT 1 FROM ecosystems WHERE ecosystem = ?').get(ecosystem) !== undefined;
  }

  /** Every affected entry for `name` in any of `ecosystems`. */
  affected(ecosystems: readonly string[], name: string): AffectedRow[] {
    const stmt = this.stmt(
      `SELECT f.ecosystem, f.severity AS fsev, f.score AS fscore, f.ranges, f.versions,
              a.id, a.summary, a.aliases, a.severity, a.score
         FROM affected f JOIN advisories a ON a.id = f.advisory_id
        WHERE f.ecosystem = ? AND f.name = ?
        ORDER BY a.id`,
    );
    const out: AffectedRow[] = [];
    for (const eco of ecosystems) {
      for (const r of stmt.all(eco, nameKey(eco, name)) as Array<Record<string, unknown>>) {
        out.push({
          advisory: { id: r.id as string, summary: r.summary as string, aliases: JSON.parse(r.aliases as string) as string[], severity: r.severity as Severity, score: r.score as number | null },
          ecosystem: r.ecosystem as string,
          severity: r.fsev as Severity,
          score: r.fscore as number | null,
          ranges: JSON.parse(r.ranges as string) as OsvRange[],
          versions: JSON.parse(r.versions as string) as string[],
        });
      }
    }
    return out;
  }

  /** Severity known for any other advisory describing the same vulnerability (shared id or alias). */
  aliasSeverity(id: string, aliases: readonly string[]): { severity: Severity; score: number | null }[] {
    const names = [id, ...aliases];
    const marks = names.map(() => '?').join(',');
    return this
      .stmt(
        `SELECT DISTINCT a.severity, a.score FROM advisories a
          WHERE a.id <> ? AND a.severity <> 'UNKNOWN'
            AND (a.id IN (${marks}) OR a.id IN (SELECT advisory_id FROM aliases WHERE alias IN (${marks})))`,
      )
      .all(id, ...names, ...names) as { severity: Severity; score: number | null }[];
  }
}
