import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import type { Accounts, App } from '../accounts/index.js';
import type { Releases } from '../deploy/index.js';
import { resolveDeployImage, type DeployImageStore } from '../deploy/index.js';
import { readJson, type Router } from '../http/index.js';
import { inventoryFromStore, parseSbomFormat, renderSbom, SbomStore, CATALOG_VERSION } from '../sbom/index.js';
import { HangarError, isHangarError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { parseInput } from '../shared/validate.js';
import type { Store } from '../store/index.js';
import { countBySeverity, importOsv, parseSeverity, scanImage, severityRank, VulnDb, vulnDbPath } from '../vulns/index.js';
import { principalOf } from './auth.js';

export interface SbomRoutesOptions {
  accounts: Accounts;
  /** Hangar's registry (only its images are scanned); a Docker Hub name is pulled through its mirror when configured. */
  images: DeployImageStore;
  /** The daemon's store: the registry's tag table answers "most recent push". */
  store: Store;
  releases: Releases;
  dataDir: string;
  /** host:port names of the daemon's own registry; the first is shown to users. */
  registryHosts: () => string[];
  log: Logger;
}

interface Target {
  repo: string;
  digest: string;
  /** host:port/repo:tag as users see it. */
  image: string;
  /** Why this image: the `image` parameter, the app's current release, or its newest tag. */
  chosen: 'image' | 'release' | 'latest-tag';
}

const importBody = z.looseObject({ source: z.string().min(1).max(4096), skip_invalid: z.boolean().optional() });

/**
 * SBOM and vulnerability API (docs/sbom-and-vulns.md): per-app SBOM and scan
 * of images in Hangar's own registry, and the admin-managed OSV database.
 */
export function sbomRoutes(router: Router, o: SbomRoutesOptions): void {
  const cache = new SbomStore(o.dataDir);
  const dbPath = vulnDbPath(o.dataDir);
  let importing = false;

  const appOf = (req: Parameters<typeof principalOf>[1], name: string) => o.accounts.getApp(principalOf(o.accounts, req), name);

  router.get('/v1/apps/:app/sbom', async ({ req, res, url, params }) => {
    const app = appOf(req, params.app!);
    const format = parseSbomFormat(url.searchParams.get('format') ?? undefined);
    const t = await target(o, app, url.searchParams.get('image'));
    const { digest, inventory, cached } = await inventoryFromStore(o.images, t.repo, t.digest, { cache });
    res.setHeader('x-hangar-sbom-cache', cached ? 'hit' : 'miss');
    res.setHeader('x-hangar-image-digest', digest);
    // The same image gives the same document: serial/namespace and time are
    // derived from the digest and the cached inventory, not from the request.
    return renderSbom(inventory, format, { name: t.image, digest, timestamp: madeAt(o.dataDir, digest), uuid: stableUuid(`${digest} ${format} ${CATALOG_VERSION}`) });
  });

  router.get('/v1/apps/:app/vulns', async ({ req, url, params }) => {
    const app = appOf(req, params.app!);
    const level = url.searchParams.get('severity');
    const min = level ? parseSeverity(level) : undefined;
    const t = await target(o, app, url.searchParams.get('image'));
    const db = openLoadedDb(dbPath);
    try {
      const scan = await scanImage(o.images, t.repo, t.digest, db, { cache });
      const stats = db.stats();
      const findings = min ? scan.findings.filter((f) => severityRank(f.severity) >= severityRank(min)) : scan.findings;
      return {
        app: app.name,
        image: t.image,
        image_source: t.chosen,
        digest: scan.digest,
        packages: scan.packages,
        packages_scanned: scan.packagesScanned,
        severity: min ?? null,
        findings,
        // Unfiltered, so `--fail-on` is decided on everything even when `severity` filters.
        total: scan.findings.length,
        counts: countBySeverity(scan.findings),
        warnings: scan.warnings,
        cached_inventory: scan.cachedInventory,
        vulndb: { advisories: stats.advisories, ecosystems: stats.ecosystems, last_import: stats.lastImport ? lastImportView(stats.lastImport) : null },
      };
    } finally {
      db.close();
    }
  });

  router.get('/v1/vulndb', ({ req }) => {
    principalOf(o.accounts, req);
    if (!existsSync(dbPath)) return { advisories: 0, ecosystems: [], last_import: null };
    const db = openDb(dbPath);
    try {
      const s = db.stats();
      return { advisories: s.advisories, ecosystems: s.ecosystems, last_import: s.lastImport ? lastImportView(s.lastImport) : null };
    } finally {
      db.close();
    }
  });

  router.post('/v1/vulndb', async ({ req }) => {
    o.accounts.requireAdmin(principalOf(o.accounts, req), 'updating the vulnerability database');
    const body = parseInput(importBody, await readJson(req), 'vulndb update');
    const source = body.source;
    if (!/^https?:\/\//i.test(source) && !isAbsolute(source)) {
      throw new HangarError('BAD_REQUEST', `source "${source}" is neither an absolute path on the daemon host nor an http(s) URL; \`hangar vulndb update\` makes local paths absolute for you`);
    }
    if (importing) throw new HangarError('CONFLICT', 'a vulnerability database update is already running; wait for it to finish');
    importing = true;
    const started = Date.now();
    try {
      const db = openDb(dbPath);
      try {
        const r = await importOsv(db, source, { skipInvalid: body.skip_invalid ?? false }).catch((e: unknown) => {
          // The library names its own option; users of the API and CLI know the flag.
          if (isHangarError(e) && e.message.includes('retry with skipInvalid')) {
            throw new HangarError(e.code, e.message.replace('retry with skipInvalid', 'retry with `hangar vulndb update --skip-invalid` (API: "skip_invalid": true)'), { status: e.status, cause: e });
          }
          // A failed download is the source's fault, and its message (URL, HTTP status) is what the admin needs.
          if (isHangarError(e) && e.code === 'UNAVAILABLE') throw new HangarError(e.code, e.message, { status: 502, expose: true, cause: e });
          throw e;
        });
        const { advisories, ecosystems } = db.stats();
        o.log.info('vulnerability database updated', { source, records: r.records, ms: Date.now() - started });
        return { source: r.source, records: r.records, withdrawn: r.withdrawn, skipped: r.skipped, problems: r.problems, imported_ecosystems: r.ecosystems, advisories, ecosystems };
      } finally {
        db.close();
      }
    } finally {
      importing = false;
    }
  });
}

function lastImportView(l: { source: string; importedAt: string; records: number }) {
  return { source: l.source, imported_at: l.importedAt, records: l.records };
}

/**
 * A damaged database is the operator's to fix (delete it and update again),
 * and the library's message says so: show it rather than a bare 500.
 */
function openDb(path: string): VulnDb {
  try {
    return VulnDb.open(path);
  } catch (e) {
    if (isHangarError(e) && !e.expose) throw new HangarError(e.code, e.message, { status: e.status, expose: true, cause: e });
    throw e;
  }
}

/** The database, if something was ever imported: an empty one would make every scan look clean. */
function openLoadedDb(path: string): VulnDb {
  const missing = () =>
    new HangarError('VULNDB_NOT_LOADED', 'the vulnerability database is empty: load OSV data first with `hangar vulndb update PATH|URL` (admin token), e.g. the OSV exports for Debian and npm', { status: 409 });
  if (!existsSync(path)) throw missing();
  const db = openDb(path);
  if (!db.stats().lastImport) {
    db.close();
    throw missing();
  }
  return db;
}

/**
 * The image to look at: the `image` parameter; else the image of the app's
 * current release (the newest completed deploy); else the tag pushed most
 * recently to one of the app's repositories.
 */
async function target(o: SbomRoutesOptions, app: App, image: string | null): Promise<Target> {
  const hosts = o.registryHosts();
  const host = hosts[0]!;
  if (image) {
    let r;
    try {
      r = await resolveDeployImage({ ref: image, app, accounts: o.accounts, images: o.images, registryHosts: hosts });
    } catch (e) {
      if (isHangarError(e) && e.code === 'IMAGE_FORBIDDEN') {
        throw new HangarError('IMAGE_FORBIDDEN', `image ${image} belongs to an app of another organization; you can only inspect images of your own organization's apps`, { status: 403 });
      }
      if (isHangarError(e) && e.code === 'IMAGE_NOT_FOUND') {
        throw new HangarError('IMAGE_NOT_FOUND', `image ${image} is not in Hangar's registry; check the name and tag with \`hangar registry list\``, { status: 404 });
      }
      throw e;
    }
    if (!r.repository || !r.digest) {
      throw new HangarError(
        'IMAGE_NOT_IN_REGISTRY',
        `${image} is not in Hangar's registry (${host}); only images in Hangar's own registry can be inspected: push it there first, e.g. \`skopeo copy docker://${image} docker://${host}/${app.name}:TAG\``,
        { status: 400 },
      );
    }
    return { repo: r.repository, digest: r.digest, image: r.image, chosen: 'image' };
  }
  const rel = o.releases.current(app.id);
  if (rel) {
    const repo = repositoryOf(rel.image);
    if (rel.image_digest && repo && o.images.resolveManifest(repo, rel.image_digest)) {
      return { repo, digest: rel.image_digest, image: `${host}/${repo}${tagOf(rel.image)}`, chosen: 'release' };
    }
    throw new HangarError(
      'IMAGE_NOT_IN_REGISTRY',
      `release v${rel.version} of ${app.name} runs ${rel.image}, which is not (or no longer) in Hangar's registry; pass --image with an image that is`,
      { status: 400 },
    );
  }
  const row = o.store.db
    .prepare(
      `SELECT t.repo, t.tag, t.digest FROM registry_tags t JOIN registry_repos r ON r.name = t.repo
        WHERE r.app_id = ? ORDER BY t.updated_at DESC, t.repo, t.tag LIMIT 1`,
    )
    .get(app.id) as { repo: string; tag: string; digest: string } | undefined;
  if (!row) {
    throw new HangarError(
      'NO_IMAGE',
      `app ${app.name} has no image in Hangar's registry yet: deploy it (\`hangar deploy\`), push one to ${host}/${app.name}:TAG, or name one with --image`,
      { status: 404 },
    );
  }
  return { repo: row.repo, digest: row.digest, image: `${host}/${row.repo}:${row.tag}`, chosen: 'latest-tag' };
}

/** `host:port/repo:tag@digest` → `repo` (releases record the image as deployed). */
function repositoryOf(image: string): string | undefined {
  let rest = image.split('@')[0]!;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') rest = rest.slice(slash + 1);
  }
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) rest = rest.slice(0, colon);
  return rest || undefined;
}

function tagOf(image: string): string {
  const ref = image.split('@')[0]!;
  const colon = ref.lastIndexOf(':');
  return colon > ref.lastIndexOf('/') ? ref.slice(colon) : '';
}

/** When the inventory was made: the cache entry's time (SbomStore keeps `<dataDir>/sbom/<alg>-<hex>.json`). */
function madeAt(dataDir: string, digest: string): Date {
  try {
    return statSync(join(dataDir, 'sbom', digest.replace(':', '-') + '.json')).mtime;
  } catch {
    return new Date();
  }
}

/** An RFC 4122 version-5-shaped UUID from a name (SHA-256 based, so stable per image and format). */
function stableUuid(name: string): string {
  const h = createHash('sha256').update(name).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
