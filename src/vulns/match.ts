import { HangarError } from '../shared/errors.js';
import type { Inventory, Package } from '../sbom/types.js';
import type { AffectedRow, VulnDb } from './db.js';
import type { OsvRange } from './osv.js';
import { parseSeverity, severityRank, SEVERITIES, type Severity } from './severity.js';
import { schemeForEcosystem, semverScheme, type VersionScheme } from './versions/index.js';

export interface Finding {
  /** Advisory id (GHSA-..., DSA-..., DEBIAN-CVE-..., ALPINE-CVE-..., PYSEC-...). */
  id: string;
  aliases: string[];
  /** Installed package name as the package manager lists it. */
  package: string;
  /** OS packages: the source package the advisory names, when different. */
  sourcePackage?: string;
  ecosystem: string;
  installedVersion: string;
  /** Lowest fixed version above the installed one; null when no fix is published. */
  fixedVersion: string | null;
  severity: Severity;
  score?: number;
  summary: string;
  purl: string;
  locations: string[];
}

export interface MatchOptions {
  /** Only report findings at or above this level (default: everything, UNKNOWN included). */
  minSeverity?: Severity | string;
}

export interface MatchResult {
  findings: Finding[];
  /** Packages that could not be checked, and why (unknown ecosystem, no data loaded, bad version). */
  warnings: string[];
  packagesScanned: number;
}

/** Ecosystem names to query for a package: Ubuntu feeds add `:LTS`, some feeds use the bare name. */
function ecosystemsFor(eco: string): string[] {
  const out = [eco];
  if (eco.startsWith('Ubuntu:')) out.push(`${eco}:LTS`);
  const base = eco.split(':')[0]!;
  if (base !== eco) out.push(base);
  return out;
}

/**
 * Evaluate one OSV range for `v` (the spec's algorithm): walking events in
 * version order, `introduced` at or below v turns "affected" on, `fixed` at or
 * below v and `last_affected` below v turn it off. `limit` caps the range.
 */
export function inRange(scheme: VersionScheme, v: string, range: OsvRange): boolean {
  const cmp = (a: string, b: string) => scheme.compare(a, b);
  const key = (e: OsvRange['events'][number]) => e.introduced ?? e.fixed ?? e.last_affected ?? e.limit ?? '';
  const events = range.events.filter((e) => key(e) !== '');
  const sorted = [...events].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka === '0' && a.introduced !== undefined) return kb === '0' && b.introduced !== undefined ? 0 : -1;
    if (kb === '0' && b.introduced !== undefined) return 1;
    return cmp(ka, kb) || (a.introduced !== undefined ? -1 : b.introduced !== undefined ? 1 : 0);
  });
  const limits = events.filter((e) => e.limit !== undefined && e.limit !== '*');
  if (limits.length && !limits.some((e) => cmp(v, e.limit!) < 0)) return false;
  let affected = false;
  for (const e of sorted) {
    if (e.introduced !== undefined) {
      if (e.introduced === '0' || cmp(v, e.introduced) >= 0) affected = true;
    } else if (e.fixed !== undefined) {
      if (cmp(v, e.fixed) >= 0) affected = false;
    } else if (e.last_affected !== undefined) {
      if (cmp(v, e.last_affected) > 0) affected = false;
    }
  }
  return affected;
}

/** Whether `row` affects version v, and the lowest fix above v among its ranges. */
export function evaluateAffected(scheme: VersionScheme, v: string, row: Pick<AffectedRow, 'ranges' | 'versions'>): { affected: boolean; fixed: string | null } {
  let affected = row.versions.some((x) => x === v || (scheme.valid(x) && scheme.compare(x, v) === 0));
  let fixed: string | null = null;
  for (const r of row.ranges) {
    if (r.type !== 'ECOSYSTEM' && r.type !== 'SEMVER') continue; // GIT ranges need commit data an image does not have
    const s = r.type === 'SEMVER' ? semverScheme() : scheme;
    if (!s.valid(v)) continue;
    if (!inRange(s, v, r)) continue;
    affected = true;
    for (const e of r.events) {
      if (e.fixed !== undefined && s.compare(e.fixed, v) > 0 && (fixed === null || s.compare(e.fixed, fixed) < 0)) fixed = e.fixed;
    }
  }
  return { affected, fixed };
}

/** Check every package of an inventory against the database. */
export function matchInventory(db: VulnDb, inv: Inventory, opts: MatchOptions = {}): MatchResult {
  const min = opts.minSeverity === undefined ? 'UNKNOWN' : typeof opts.minSeverity === 'string' ? parseSeverity(opts.minSeverity) : opts.minSeverity;
  const warnings: string[] = [];
  const missingEco = new Set<string>();
  const findings = new Map<string, Finding>();
  let scanned = 0;
  const unmatchable = inv.packages.filter((p) => !p.ecosystem).length;
  if (unmatchable) warnings.push(`${unmatchable} package(s) have no known OSV ecosystem and were not checked (see the SBOM warnings)`);
  for (const p of inv.packages) {
    if (!p.ecosystem) continue;
    const scheme = schemeForEcosystem(p.ecosystem);
    if (!scheme) {
      warnings.push(`${p.name}: no version ordering for ecosystem ${p.ecosystem}; not checked`);
      continue;
    }
    const ecos = ecosystemsFor(p.ecosystem);
    if (!ecos.some((e) => db.hasEcosystem(e))) {
      missingEco.add(p.ecosystem);
      continue;
    }
    scanned++;
    const name = p.sourceName ?? p.name;
    const version = p.sourceVersion ?? p.version;
    if (!scheme.valid(version)) {
      warnings.push(`${p.name} ${version}: not a valid ${scheme.name} version; not checked`);
      continue;
    }
    for (const row of db.affected(ecos, name)) {
      let r: { affected: boolean; fixed: string | null };
      try {
        r = evaluateAffected(scheme, version, row);
      } catch (e) {
        warnings.push(`${row.advisory.id} for ${name}: ${(e as Error).message}; range ignored`);
        continue;
      }
      if (!r.affected) continue;
      addFinding(db, findings, p, row, r.fixed);
    }
  }
  for (const eco of [...missingEco].sort()) {
    warnings.push(`the vulnerability database has no ${eco} advisories; load them with "hangar vulndb update" (OSV export for ${eco.split(':')[0]}) — those packages were not checked`);
  }
  const list = [...findings.values()]
    .filter((f) => severityRank(f.severity) >= severityRank(min))
    .sort((a, b) => severityRank(b.severity) - severityRank(a.severity) || cmp(a.package, b.package) || cmp(a.installedVersion, b.installedVersion) || cmp(a.id, b.id));
  return { findings: list, warnings, packagesScanned: scanned };
}

function addFinding(db: VulnDb, findings: Map<string, Finding>, p: Package, row: AffectedRow, fixed: string | null): void {
  const key = `${row.advisory.id}\0${p.purl}`;
  const seen = findings.get(key);
  const scheme = schemeForEcosystem(p.ecosystem!)!;
  if (seen) {
    // Several affected entries of one advisory: keep the lowest fix.
    if (fixed !== null && (seen.fixedVersion === null || scheme.compare(fixed, seen.fixedVersion) < 0)) seen.fixedVersion = fixed;
    return;
  }
  let severity = row.severity;
  let score = row.score ?? undefined;
  if (severity === 'UNKNOWN') {
    // Distro feeds often carry no rating; the same CVE's rating from another loaded feed is the best evidence.
    for (const o of db.aliasSeverity(row.advisory.id, row.advisory.aliases)) {
      if (severityRank(o.severity) > severityRank(severity)) {
        severity = o.severity;
        score = o.score ?? undefined;
      }
    }
  }
  findings.set(key, {
    id: row.advisory.id,
    aliases: row.advisory.aliases,
    package: p.name,
    ...(p.sourceName && p.sourceName !== p.name ? { sourcePackage: p.sourceName } : {}),
    ecosystem: row.ecosystem,
    installedVersion: p.version,
    fixedVersion: fixed,
    severity,
    ...(score !== undefined ? { score } : {}),
    summary: row.advisory.summary,
    purl: p.purl,
    locations: p.locations,
  });
}

/** True when any finding is at or above `level`: the CLI's `--fail-on` exit status. */
export function exceedsFailOn(findings: readonly Finding[], level: Severity | string): boolean {
  const min = severityRank(typeof level === 'string' ? parseSeverity(level) : level);
  return findings.some((f) => severityRank(f.severity) >= min);
}

/** Count of findings per severity, for summaries. */
export function countBySeverity(findings: readonly Finding[]): Record<Severity, number> {
  const out = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<Severity, number>;
  for (const f of findings) out[f.severity]++;
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function assertInventory(inv: unknown): asserts inv is Inventory {
  if (!inv || typeof inv !== 'object' || !Array.isArray((inv as Inventory).packages)) {
    throw new HangarError('BAD_REQUEST', 'expected an inventory from the sbom component (an object with a packages array)');
  }
}
