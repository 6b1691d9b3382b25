/**
 * Vulnerability scanning against OSV data kept in a local SQLite database:
 * import OSV exports (directory, zip, URL), compare versions the way each
 * ecosystem does, and match an image inventory (from src/sbom) to findings.
 */
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

/** Open the database at `dbPath`, match, close: the one-call form for CLI use. */
export function scanInventory(dbPath: string, inv: Inventory, opts?: MatchOptions): MatchResult {
  const db = VulnDb.open(dbPath);
  try {
    return matchInventory(db, inv, opts);
  } finally {
    db.close();
  }
}
