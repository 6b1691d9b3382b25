import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type Db = Database.Database;

/**
 * Hangar's state: one SQLite file in the data dir.
 *
 * Each component owns its tables and registers its own ordered migrations
 * under its name, so components can evolve their schema independently:
 * `store.migrate('registry', [sqlV1, sqlV2])` applies the versions not yet
 * recorded in `schema_migrations`, each in its own transaction.
 */
export class Store {
  readonly db: Db;

  constructor(readonly path: string) {
    this.db = new Database(path);
    // WAL lets the CLI-facing API read while a push commits; NORMAL sync is
    // durable across process crashes (what kill -9 tests exercise).
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      component TEXT NOT NULL,
      version INTEGER NOT NULL,
      applied_at TEXT NOT NULL,
      PRIMARY KEY (component, version)
    )`);
  }

  migrate(component: string, migrations: readonly string[]): void {
    const applied = new Set(
      this.db
        .prepare('SELECT version FROM schema_migrations WHERE component = ?')
        .all(component)
        .map((r) => (r as { version: number }).version),
    );
    migrations.forEach((sql, i) => {
      const version = i + 1;
      if (applied.has(version)) return;
      this.db.transaction(() => {
        this.db.exec(sql);
        this.db
          .prepare('INSERT INTO schema_migrations (component, version, applied_at) VALUES (?, ?, ?)')
          .run(component, version, new Date().toISOString());
      })();
    });
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

export function openStore(dataDir: string): Store {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return new Store(join(dataDir, 'hangar.db'));
}
