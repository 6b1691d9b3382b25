import type { Store } from '../store/index.js';
import { newId, nowIso } from '../shared/ids.js';
import type { AppConfig } from '../appconfig/index.js';

export type ReleaseStatus = 'pending' | 'running' | 'complete' | 'failed';

export interface Release {
  id: string;
  app: string;
  version: number;
  /** host:port/repo:tag (what the user deployed). */
  image: string;
  image_digest: string | null;
  strategy: string;
  status: ReleaseStatus;
  description: string;
  user: string;
  /** Why it failed, for humans. */
  reason: string | null;
  created_at: string;
  finished_at: string | null;
  config: AppConfig;
}

const migrations = [
  `CREATE TABLE deploy_releases (
     id TEXT PRIMARY KEY,
     app_id TEXT NOT NULL,
     app TEXT NOT NULL,
     version INTEGER NOT NULL,
     image TEXT NOT NULL,
     image_digest TEXT,
     strategy TEXT NOT NULL,
     status TEXT NOT NULL,
     description TEXT NOT NULL,
     user TEXT NOT NULL,
     reason TEXT,
     config TEXT NOT NULL,
     created_at TEXT NOT NULL,
     finished_at TEXT,
     UNIQUE (app_id, version)
   );
   CREATE INDEX deploy_releases_app ON deploy_releases(app_id, version);`,
];

type Row = Omit<Release, 'config'> & { config: string; app_id: string };
const fromRow = (r: Row): Release => {
  const { app_id: _appId, ...rest } = r;
  return { ...rest, config: JSON.parse(r.config) as AppConfig };
};

/** Every deploy is a release: version, image, digest, strategy, status, time, who. */
export class Releases {
  constructor(private readonly store: Store) {
    store.migrate('deploy', migrations);
  }

  create(appId: string, app: string, r: { image: string; image_digest: string | null; strategy: string; description: string; user: string; config: AppConfig }): Release {
    return this.store.db.transaction(() => {
      const max = this.store.db.prepare('SELECT MAX(version) AS v FROM deploy_releases WHERE app_id = ?').get(appId) as { v: number | null };
      const row: Row = {
        id: newId(),
        app_id: appId,
        app,
        version: (max.v ?? 0) + 1,
        image: r.image,
        image_digest: r.image_digest,
        strategy: r.strategy,
        status: 'running',
        description: r.description,
        user: r.user,
        reason: null,
        config: JSON.stringify(r.config),
        created_at: nowIso(),
        finished_at: null,
      };
      this.store.db
        .prepare(
          `INSERT INTO deploy_releases (id, app_id, app, version, image, image_digest, strategy, status, description, user, reason, config, created_at, finished_at)
           VALUES (@id, @app_id, @app, @version, @image, @image_digest, @strategy, @status, @description, @user, @reason, @config, @created_at, @finished_at)`,
        )
        .run(row);
      return fromRow(row);
    })();
  }

  finish(id: string, status: 'complete' | 'failed', reason: string | null = null): void {
    this.store.db.prepare('UPDATE deploy_releases SET status = ?, reason = ?, finished_at = ? WHERE id = ?').run(status, reason, nowIso(), id);
  }

  list(appId: string): Release[] {
    return (this.store.db.prepare('SELECT * FROM deploy_releases WHERE app_id = ? ORDER BY version DESC').all(appId) as Row[]).map(fromRow);
  }

  get(appId: string, version: number): Release | undefined {
    const r = this.store.db.prepare('SELECT * FROM deploy_releases WHERE app_id = ? AND version = ?').get(appId, version) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  /** The newest release that completed: what the app runs. */
  current(appId: string): Release | undefined {
    const r = this.store.db.prepare("SELECT * FROM deploy_releases WHERE app_id = ? AND status = 'complete' ORDER BY version DESC LIMIT 1").get(appId) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  /** Releases left running by a daemon that stopped mid-deploy. */
  failInterrupted(): number {
    return this.store.db
      .prepare("UPDATE deploy_releases SET status = 'failed', reason = 'the daemon stopped during the deploy', finished_at = ? WHERE status IN ('pending', 'running')")
      .run(nowIso()).changes;
  }
}
