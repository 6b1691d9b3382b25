/**
 * Vulnerability scanning against OSV data kept in a local SQLite database:
 * import OSV exports (directory, zip, URL), compare versions the way each
 * ecosystem does, and match an image inventory (from src/sbom) to findings.
 */
import { join } from 'node:path';
import type { LocalImageStore } from '../shared/image-store.js';
import { inventoryFromStore, type Platform, type SbomStore } from '../sbom/index.js';
import type { Inventory } from '../sbom/types.js';
import { VulnDb } from './db.js';
import { matchInventory, type MatchOptions, type MatchResult } from './match.js';

export { VulnDb, VULNDB_SCHEMA_VERSION, type VulnDbStats } from './db.js';
export { importOsv, type ImportOptions, type ImportResult } from './import.js';
export { matchInventory, exceedsFailOn, countBySeverity, evaluateAffected, inRange, type Finding, type MatchOptions, type MatchResult } from './match.js';
export { SEVERITIES, parseSeverity, severityRank, osvSeverity, type Severity } from './severity.js';
export { cvss3BaseScore, cvss2BaseScore } from './cvss.js';
export { compareVersions, schemeForEcosystem, compareDebian, compareApk, compareSemver, comparePep440, compareRpm } from './versions/index.js';
export { ZipReader, isSafeZipName } from './zip.js';
export { formatFindings } from './report.js';

/** Where the vulnerability database lives inside Hangar's data directory. */
export function vulnDbPath(dataDir: string): string {
  return join(dataDir, 'vulndb', 'osv.sqlite');
}

/** Open the database at `dbPath`, match, close: the one-call form for CLI use. */
export function scanInventory(dbPath: string, inv: Inventory, opts?: MatchOptions): MatchResult {
  const db = VulnDb.open(dbPath);
  try {
    return matchInventory(db, inv, opts);
  } finally {
    db.close();
  }
}

export interface ImageScan extends MatchResult {
  /** Platform manifest digest that was scanned. */
  digest: string;
  packages: number;
  /** The SBOM's own warnings (unknown distro, skipped metadata files) come first in `warnings`. */
  cachedInventory: boolean;
}

/**
 * Scan `repo:reference` from the local registry store: inventory (cached per
 * digest in `cache`), then match against `db`. This is what the CLI's
 * `registry vulns` and the daemon API call.
 */
export async function scanImage(
  store: LocalImageStore,
  repo: string,
  reference: string,
  db: VulnDb,
  opts: MatchOptions & { cache?: SbomStore; platform?: Platform } = {},
): Promise<ImageScan> {
  const { digest, inventory, cached } = await inventoryFromStore(store, repo, reference, { cache: opts.cache, platform: opts.platform });
  const r = matchInventory(db, inventory, opts);
  return { digest, packages: inventory.packages.length, cachedInventory: cached, findings: r.findings, warnings: [...inventory.warnings, ...r.warnings], packagesScanned: r.packagesScanned };
}
