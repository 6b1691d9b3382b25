import type { Db } from '../store/index.js';

export interface ManifestRow {
  repo: string;
  digest: string;
  media_type: string;
  size: number;
  subject: string | null;
  artifact_type: string | null;
  annotations: string | null;
  created_at: number;
}

export interface NewManifest {
  repo: string;
  digest: string;
  mediaType: string;
  size: number;
  subject?: string;
  artifactType?: string;
  annotations?: Record<string, string>;
  refs: string[];
  tag?: string;
}

/** The registry's SQLite queries, in one place. All synchronous (better-sqlite3). */
export class Metadata {
  constructor(private readonly db: Db) {}

  ensureRepo(name: string, appId: string): void {
    const row = this.db.prepare('SELECT app_id FROM registry_repos WHERE name = ?').get(name) as { app_id: string } | undefined;
    if (row && row.app_id === appId) return;
    this.db.transaction(() => {
      // The app was destroyed and the name reused: the old images are not the new owner's.
      if (row) this.dropRepo(name);
      this.db.prepare('INSERT INTO registry_repos (name, app_id, created_at) VALUES (?, ?, ?)').run(name, appId, Date.now());
    })();
  }

  repoAppId(name: string): string | undefined {
    return (this.db.prepare('SELECT app_id FROM registry_repos WHERE name = ?').get(name) as { app_id: string } | undefined)?.app_id;
  }

  /** Whether the repo's stored data belongs to this app (false: stale data of a destroyed app of the same name). */
  repoOwnedBy(name: string, appId: string): boolean {
    const row = this.db.prepare('SELECT app_id FROM registry_repos WHERE name = ?').get(name) as { app_id: string } | undefined;
    return row !== undefined && row.app_id === appId;
  }

  dropRepo(name: string): void {
    this.db.prepare('DELETE FROM registry_tags WHERE repo = ?').run(name);
    this.db.prepare('DELETE FROM registry_pull_through WHERE repo = ?').run(name);
    this.db.prepare('DELETE FROM registry_manifests WHERE repo = ?').run(name);
    this.db.prepare('DELETE FROM registry_repo_blobs WHERE repo = ?').run(name);
    this.db.prepare('DELETE FROM registry_uploads WHERE repo = ?').run(name);
    this.db.prepare('DELETE FROM registry_repos WHERE name = ?').run(name);
  }

  listRepos(): Array<{ name: string; app_id: string }> {
    return this.db.prepare('SELECT name, app_id FROM registry_repos ORDER BY name').all() as Array<{ name: string; app_id: string }>;
  }

  // --- blobs ------------------------------------------------------------------

  blob(digest: string): { size: number } | undefined {
    return this.db.prepare('SELECT size FROM registry_blobs WHERE digest = ?').get(digest) as { size: number } | undefined;
  }

  repoBlob(repo: string, digest: string): { size: number } | undefined {
    return this.db
      .prepare('SELECT b.size FROM registry_repo_blobs l JOIN registry_blobs b ON b.digest = l.digest WHERE l.repo = ? AND l.digest = ?')
      .get(repo, digest) as { size: number } | undefined;
  }

  /** Record a stored blob (or refresh it) and let `repo` see it. */
  putBlob(digest: string, size: number, repo?: string): void {
    const now = Date.now();
    this.db
      .prepare(
        `INSERT INTO registry_blobs (digest, size, created_at, touched_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(digest) DO UPDATE SET touched_at = excluded.touched_at`,
      )
      .run(digest, size, now, now);
    if (repo) this.link(repo, digest);
  }

  link(repo: string, digest: string): void {
    this.db.prepare('INSERT OR IGNORE INTO registry_repo_blobs (repo, digest, created_at) VALUES (?, ?, ?)').run(repo, digest, Date.now());
  }

  unlink(repo: string, digest: string): boolean {
    return this.db.prepare('DELETE FROM registry_repo_blobs WHERE repo = ? AND digest = ?').run(repo, digest).changes > 0;
  }

  /** An existence check counts as use: a client that saw "exists" will reference the blob soon (gc grace). */
  touch(digest: string): void {
    this.db.prepare('UPDATE registry_blobs SET touched_at = ? WHERE digest = ?').run(Date.now(), digest);
  }

  // --- manifests and tags -------------------------------------------------------

  manifest(repo: string, digest: string): ManifestRow | undefined {
    return this.db.prepare('SELECT * FROM registry_manifests WHERE repo = ? AND digest = ?').get(repo, digest) as ManifestRow | undefined;
  }

  tag(repo: string, tag: string): string | undefined {
    const row = this.db.prepare('SELECT digest FROM registry_tags WHERE repo = ? AND tag = ?').get(repo, tag) as { digest: string } | undefined;
    return row?.digest;
  }

  putManifest(m: NewManifest): void {
    const now = Date.now();
    this.db
      .prepare(
        `INSERT INTO registry_manifests (repo, digest, media_type, size, subject, artifact_type, annotations, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(repo, digest) DO UPDATE SET media_type = excluded.media_type`,
      )
      .run(m.repo, m.digest, m.mediaType, m.size, m.subject ?? null, m.artifactType ?? null, m.annotations ? JSON.stringify(m.annotations) : null, now);
    const ref = this.db.prepare('INSERT OR IGNORE INTO registry_manifest_refs (manifest, ref) VALUES (?, ?)');
    for (const r of m.refs) ref.run(m.digest, r);
    if (m.tag !== undefined) {
      this.db
        .prepare(
          `INSERT INTO registry_tags (repo, tag, digest, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT(repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
        )
        .run(m.repo, m.tag, m.digest, now);
    }
  }

  /** Whether a manifest stored in `repo` references `digest` (a blob or a child manifest). */
  referencedIn(repo: string, digest: string): boolean {
    return (
      this.db
        .prepare('SELECT 1 FROM registry_manifest_refs r JOIN registry_manifests m ON m.digest = r.manifest WHERE m.repo = ? AND r.ref = ? LIMIT 1')
        .get(repo, digest) !== undefined
    );
  }

  /** The pull-through mark of a tag: when it was last resolved against the upstream; undefined for a pushed tag. */
  pulledAt(repo: string, tag: string): number | undefined {
    return (this.db.prepare('SELECT checked_at FROM registry_pull_through WHERE repo = ? AND tag = ?').get(repo, tag) as { checked_at: number } | undefined)?.checked_at;
  }

  /** Set (a time) or clear (undefined: the tag was pushed here) a tag's pull-through mark. */
  markPulled(repo: string, tag: string, at: number | undefined): void {
    if (at === undefined) this.db.prepare('DELETE FROM registry_pull_through WHERE repo = ? AND tag = ?').run(repo, tag);
    else
      this.db
        .prepare('INSERT INTO registry_pull_through (repo, tag, checked_at) VALUES (?, ?, ?) ON CONFLICT(repo, tag) DO UPDATE SET checked_at = excluded.checked_at')
        .run(repo, tag, at);
  }

  deleteManifest(repo: string, digest: string): boolean {
    return this.db.transaction(() => {
      const n = this.db.prepare('DELETE FROM registry_manifests WHERE repo = ? AND digest = ?').run(repo, digest).changes;
      this.db.prepare('DELETE FROM registry_tags WHERE repo = ? AND digest = ?').run(repo, digest);
      return n > 0;
    })();
  }

  deleteTag(repo: string, tag: string): boolean {
    return this.db.prepare('DELETE FROM registry_tags WHERE repo = ? AND tag = ?').run(repo, tag).changes > 0;
  }

  tags(repo: string, last: string | undefined, limit: number): string[] {
    return (
      this.db
        .prepare('SELECT tag FROM registry_tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?')
        .all(repo, last ?? '', limit) as Array<{ tag: string }>
    ).map((r) => r.tag);
  }

  referrers(repo: string, subject: string): ManifestRow[] {
    return this.db.prepare('SELECT * FROM registry_manifests WHERE repo = ? AND subject = ? ORDER BY created_at, digest').all(repo, subject) as ManifestRow[];
  }

  // --- upload sessions ----------------------------------------------------------

  createUpload(id: string, repo: string): void {
    const now = Date.now();
    this.db.prepare('INSERT INTO registry_uploads (id, repo, created_at, updated_at) VALUES (?, ?, ?, ?)').run(id, repo, now, now);
  }

  upload(id: string): { id: string; repo: string; created_at: number; updated_at: number } | undefined {
    return this.db.prepare('SELECT * FROM registry_uploads WHERE id = ?').get(id) as
      | { id: string; repo: string; created_at: number; updated_at: number }
      | undefined;
  }

  touchUpload(id: string): void {
    this.db.prepare('UPDATE registry_uploads SET updated_at = ? WHERE id = ?').run(Date.now(), id);
  }

  deleteUpload(id: string): void {
    this.db.prepare('DELETE FROM registry_uploads WHERE id = ?').run(id);
  }

  uploadsOlderThan(cutoff: number): string[] {
    return (this.db.prepare('SELECT id FROM registry_uploads WHERE updated_at < ?').all(cutoff) as Array<{ id: string }>).map((r) => r.id);
  }

  uploadIds(): Set<string> {
    return new Set((this.db.prepare('SELECT id FROM registry_uploads').all() as Array<{ id: string }>).map((r) => r.id));
  }
}
