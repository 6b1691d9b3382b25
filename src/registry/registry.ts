import { join } from 'node:path';
import { readdir, readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Accounts } from '../accounts/index.js';
import type { Store } from '../store/index.js';
import type { Logger } from '../shared/log.js';
import type { AppRef, LocalImageStore, LocalImageWriter } from '../shared/image-store.js';
import { ContentStore } from './content-store.js';
import { Metadata } from './metadata.js';
import { Uploads } from './uploads.js';
import { RwLock } from './lock.js';
import { RegistryAuth } from './auth.js';
import { TokenSigner } from './tokens.js';
import { registryMigrations } from './schema.js';
import { digestOf, isDigestRef, parseDigest, type Digest } from './digest.js';
import { parseManifest, type ParsedManifest } from './manifests.js';
import { parseRepoName } from './names.js';
import { handleRegistryRequest } from './http.js';
import { regErr } from './errors.js';
import { PullThrough, type PullThroughOptions } from './pull-through.js';

export interface RegistryOptions {
  dataDir: string;
  store: Store;
  accounts: Accounts;
  log: Logger;
  /** Lifetime of registry tokens issued by /auth/token (default 600 s). */
  tokenTtlSeconds?: number;
  /** Upload sessions idle this long are removed (default 24 h). */
  uploadExpiryMs?: number;
  /** gc keeps unreferenced blobs younger than this (default 1 h): pushes in flight reference them soon. */
  gcGraceMs?: number;
  /**
   * Pull-through for the Docker Hub mirror (docker.io/ repositories): misses
   * are fetched from this upstream. Absent: no pull-through (the mirror holds
   * only what was pushed, e.g. by `hangar images seed`).
   */
  mirror?: PullThroughOptions;
}

export interface GcResult {
  blobs_deleted: number;
  bytes_freed: number;
  orphan_files_deleted: number;
  stale_repositories_dropped: number;
  uploads_expired: number;
  dry_run: boolean;
  digests: string[];
}

const HOUR = 3600_000;

/**
 * Hangar's OCI registry: the content store, its metadata, token auth and the
 * /v2/ HTTP API. It is a daemon mount (`prefixes` + `handle`) and the
 * LocalImageStore the rootfs builder reads images through.
 */
export class Registry implements LocalImageStore, LocalImageWriter {
  readonly prefixes = ['/v2/', '/auth/token', '/v1/registry/'];
  readonly content: ContentStore;
  readonly meta: Metadata;
  readonly uploads: Uploads;
  readonly lock = new RwLock();
  readonly auth: RegistryAuth;
  readonly accounts: Accounts;
  readonly log: Logger;
  readonly uploadExpiryMs: number;
  readonly gcGraceMs: number;
  /** The mirror's pull-through, when an upstream is configured. */
  readonly pullThrough: PullThrough | undefined;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(readonly options: RegistryOptions) {
    options.store.migrate('registry', registryMigrations);
    const root = join(options.dataDir, 'registry');
    this.content = new ContentStore(root);
    this.content.removeStaleTemps();
    this.meta = new Metadata(options.store.db);
    this.uploads = new Uploads(this.meta, this.content);
    this.accounts = options.accounts;
    this.log = options.log;
    this.auth = new RegistryAuth(options.accounts, new TokenSigner(join(root, 'token.key')), options.tokenTtlSeconds ?? 600);
    this.uploadExpiryMs = options.uploadExpiryMs ?? 24 * HOUR;
    this.gcGraceMs = options.gcGraceMs ?? HOUR;
    this.pullThrough = options.mirror ? new PullThrough(this, this.log, options.mirror) : undefined;
    if (this.pullThrough) this.log.info('registry: docker.io/ mirror pulls misses through', { upstream: this.pullThrough.upstream.origin });
    this.sweep();
    this.sweeper = setInterval(() => this.sweep(), 10 * 60_000);
    this.sweeper.unref();
  }

  handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    return handleRegistryRequest(this, req, res);
  }

  private sweep(): void {
    this.uploads
      .sweep(this.uploadExpiryMs)
      .then((n) => {
        if (n) this.log.info('registry: expired upload sessions removed', { count: n });
      })
      .catch((err) => this.log.error('registry: upload sweep failed', { err }));
  }

  close(): void {
    this.pullThrough?.close();
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** Drop what a destroyed app of the same name left behind, so a new owner never sees it. */
  syncRepo(repo: string, app: AppRef): void {
    const owner = this.meta.repoAppId(repo);
    if (owner !== undefined && owner !== app.id) this.meta.dropRepo(repo);
  }

  /**
   * Put a verified file into the store (one copy per digest) and link it to
   * `repo`. `tempPath` must hold exactly the bytes of `digest`.
   */
  async commitBlob(tempPath: string, digest: Digest, size: number, repo: string, app: AppRef): Promise<void> {
    await this.lock.shared(async () => {
      if (this.meta.blob(digest.value) && (await this.content.fileExists(digest))) {
        await this.content.remove(tempPath);
      } else {
        await this.content.syncFile(tempPath);
        await this.content.install(tempPath, digest);
      }
      this.options.store.db.transaction(() => {
        this.meta.ensureRepo(repo, app.id);
        this.meta.putBlob(digest.value, size, repo);
      })();
    });
  }

  /**
   * Store a parsed, digest-checked manifest in `repo` (optionally tagging it),
   * the one path for pushes and the pull-through mirror. `check` runs under
   * the lock before anything is written (a push's "blobs present" rule).
   * `pulled` marks a tag as fetched from the mirror's upstream (re-resolved
   * after a TTL); a pushed tag clears that mark and stays as pushed.
   */
  async storeManifest(m: { repo: string; app: AppRef; body: Buffer; parsed: ParsedManifest; digest: Digest; tag?: string; check?: () => void; pulled?: boolean }): Promise<void> {
    const { repo, body, parsed, digest: d } = m;
    await this.lock.shared(async () => {
      m.check?.();
      if (!this.meta.blob(d.value) || !(await this.content.fileExists(d))) {
        const tmp = this.content.tempPath();
        try {
          await this.content.write(tmp, body);
          await this.content.install(tmp, d);
        } catch (e) {
          await this.content.remove(tmp);
          throw e;
        }
      }
      this.options.store.db.transaction(() => {
        this.meta.ensureRepo(repo, m.app.id);
        this.meta.putBlob(d.value, body.length);
        this.meta.putManifest({
          repo,
          digest: d.value,
          mediaType: parsed.mediaType,
          size: body.length,
          subject: parsed.subject,
          artifactType: parsed.artifactType,
          annotations: parsed.annotations,
          refs: [...parsed.blobs, ...parsed.children],
          tag: m.tag,
        });
        if (m.tag !== undefined) this.meta.markPulled(repo, m.tag, m.pulled ? Date.now() : undefined);
      })();
    });
  }

  /** A manifest may only name blobs and child manifests its repository already has (the push rule). */
  checkManifestRefs(repo: string, parsed: ParsedManifest): void {
    const missingBlob = parsed.blobs.find((b) => !this.meta.repoBlob(repo, b));
    if (missingBlob) {
      throw regErr('MANIFEST_BLOB_UNKNOWN', `the manifest references blob ${missingBlob}, which is not in ${repo}: push the blob first`, {
        detail: { digest: missingBlob },
      });
    }
    const missingChild = parsed.children.find((c) => !this.meta.manifest(repo, c));
    if (missingChild) {
      throw regErr('MANIFEST_UNKNOWN', `the index references manifest ${missingChild}, which is not in ${repo}: push it first`, {
        detail: { digest: missingChild },
      });
    }
  }

  // --- LocalImageStore ------------------------------------------------------------

  resolveManifest(repo: string, reference: string): { digest: string; mediaType: string } | undefined {
    let appName: string;
    try {
      appName = parseRepoName(repo).app;
    } catch {
      return undefined;
    }
    const app = this.accounts.findApp(appName);
    if (!app || !this.meta.repoOwnedBy(repo, app.id)) return undefined;
    const digest = isDigestRef(reference) ? reference : this.meta.tag(repo, reference);
    if (!digest) return undefined;
    const row = this.meta.manifest(repo, digest);
    return row ? { digest: row.digest, mediaType: row.media_type } : undefined;
  }

  blobPath(digest: string): string | undefined {
    let d: Digest;
    try {
      d = parseDigest(digest);
    } catch {
      return undefined;
    }
    return this.meta.blob(d.value) ? this.content.blobPath(d) : undefined;
  }

  /** Read a manifest's bytes (for readers that want the JSON, not a path). */
  async readBlob(digest: string): Promise<Buffer | undefined> {
    const p = this.blobPath(digest);
    return p ? readFile(p) : undefined;
  }

  // --- LocalImageWriter: the daemon's builder publishing in-process ---------------

  async linkBlob(repo: string, app: AppRef, digest: string): Promise<boolean> {
    const d = parseDigest(digest);
    this.syncRepo(repo, app);
    if (!this.meta.blob(d.value) || !(await this.content.fileExists(d))) return false;
    this.options.store.db.transaction(() => {
      this.meta.ensureRepo(repo, app.id);
      this.meta.link(repo, d.value);
      this.meta.touch(d.value);
    })();
    return true;
  }

  blobTempPath(): string {
    return this.content.tempPath();
  }

  async addBlob(repo: string, app: AppRef, tempPath: string, digest: string, size: number): Promise<void> {
    this.syncRepo(repo, app);
    await this.commitBlob(tempPath, parseDigest(digest), size, repo, app);
  }

  async putManifest(repo: string, app: AppRef, tag: string, body: Buffer, mediaType: string): Promise<string> {
    this.syncRepo(repo, app);
    const parsed = parseManifest(body, mediaType);
    const digest = parseDigest(digestOf(body, 'sha256'));
    await this.storeManifest({ repo, app, body, parsed, digest, tag, check: () => this.checkManifestRefs(repo, parsed) });
    return digest.value;
  }

  // --- garbage collection -----------------------------------------------------------

  /**
   * Mark and sweep under the exclusive lock. Marked: every manifest of every
   * repository and, recursively, what it references. Swept: other blobs not
   * touched (uploaded, mounted, HEAD-checked) within the grace period, so a
   * push that uploaded its layers but not yet its manifest keeps them.
   * Commits in flight hold the lock shared, so gc waits for them.
   */
  async gc(opts: { graceMs?: number; dryRun?: boolean } = {}): Promise<GcResult> {
    const grace = opts.graceMs ?? this.gcGraceMs;
    const dryRun = opts.dryRun ?? false;
    const uploadsExpired = dryRun ? 0 : await this.uploads.sweep(this.uploadExpiryMs);
    return this.lock.exclusive(async () => {
      const cutoff = Date.now() - grace;
      const db = this.options.store.db;
      const { victims, stale } = db.transaction(() => {
        let stale = 0;
        for (const r of this.meta.listRepos()) {
          const app = this.accounts.findApp(parseRepoName(r.name).app);
          if (!app || app.id !== r.app_id) {
            stale++;
            if (!dryRun) this.meta.dropRepo(r.name);
          }
        }
        const victims = db
          .prepare(
            `WITH RECURSIVE live(d) AS (
               SELECT digest FROM registry_manifests
               UNION
               SELECT r.ref FROM registry_manifest_refs r JOIN live ON r.manifest = live.d
             )
             SELECT digest, size FROM registry_blobs WHERE touched_at < ? AND digest NOT IN (SELECT d FROM live)`,
          )
          .all(cutoff) as Array<{ digest: string; size: number }>;
        if (!dryRun) {
          const delBlob = db.prepare('DELETE FROM registry_blobs WHERE digest = ?');
          const delLinks = db.prepare('DELETE FROM registry_repo_blobs WHERE digest = ?');
          for (const v of victims) {
            delBlob.run(v.digest);
            delLinks.run(v.digest);
          }
          db.prepare('DELETE FROM registry_manifest_refs WHERE manifest NOT IN (SELECT digest FROM registry_blobs)').run();
        }
        return { victims, stale };
      })();
      let orphans = 0;
      if (!dryRun) {
        for (const v of victims) await this.content.remove(this.content.blobPath(parseDigest(v.digest)));
        orphans = await this.removeOrphanFiles(cutoff);
      }
      const result: GcResult = {
        blobs_deleted: victims.length,
        bytes_freed: victims.reduce((s, v) => s + v.size, 0),
        orphan_files_deleted: orphans,
        stale_repositories_dropped: stale,
        uploads_expired: uploadsExpired,
        dry_run: dryRun,
        digests: victims.map((v) => v.digest),
      };
      this.log.info('registry gc finished', { ...result, digests: undefined });
      return result;
    });
  }

  /** Files in blobs/ with no row: a crash between rename and the row insert. */
  private async removeOrphanFiles(cutoff: number): Promise<number> {
    let n = 0;
    for (const algorithm of ['sha256', 'sha512'] as const) {
      const algDir = join(this.content.blobsDir, algorithm);
      const prefixes = await readdir(algDir).catch(() => [] as string[]);
      for (const p of prefixes) {
        for (const hex of await readdir(join(algDir, p)).catch(() => [] as string[])) {
          if (this.meta.blob(`${algorithm}:${hex}`)) continue;
          const file = join(algDir, p, hex);
          const st = await stat(file).catch(() => undefined);
          if (st && st.mtimeMs < cutoff) {
            await this.content.remove(file);
            n++;
          }
        }
      }
    }
    return n;
  }
}

export function createRegistry(options: RegistryOptions): Registry {
  return new Registry(options);
}
