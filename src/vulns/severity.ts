import { HangarError } from '../shared/errors.js';
import { cvss2BaseScore, cvss3BaseScore } from './cvss.js';

export const SEVERITIES = ['UNKNOWN', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL'] as const;
export type Severity = (typeof SEVERITIES)[number];

export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

/** Parse a user-supplied level (case-insensitive; MODERATE is accepted for MEDIUM). */
export function parseSeverity(s: string): Severity {
  const v = s.trim().toUpperCase();
  if (v === 'MODERATE') return 'MEDIUM';
  if ((SEVERITIES as readonly string[]).includes(v)) return v as Severity;
  throw new HangarError('BAD_REQUEST', `unknown severity "${s}"; use one of ${SEVERITIES.join(', ')}`);
}

/** NVD's v3 rating bands. */
export function severityFromScore(score: number, cvssMajor = 3): Severity {
  if (cvssMajor === 2) return score >= 7 ? 'HIGH' : score >= 4 ? 'MEDIUM' : 'LOW';
  if (score >= 9) return 'CRITICAL';
  if (score >= 7) return 'HIGH';
  if (score >= 4) return 'MEDIUM';
  return 'LOW';
}

/** Map a feed's textual label (GHSA, Debian urgency, Ubuntu priority) to a level. */
export function severityFromLabel(label: unknown): Severity | undefined {
  if (typeof label !== 'string') return undefined;
  const v = label.trim().toLowerCase().replace(/\*$/, '');
  switch (v) {
    case 'critical':
      return 'CRITICAL';
    case 'high':
    case 'important':
      return 'HIGH';
    case 'moderate':
    case 'medium':
      return 'MEDIUM';
    case 'low':
    case 'negligible':
    case 'unimportant':
    case 'end-of-life':
      return 'LOW';
    default:
      return undefined;
  }
}

interface OsvSeverityEntry {
  type: string;
  score: string;
}

/** The highest score among an OSV `severity[]` list (CVSS v3 preferred over v2; v4 vectors are not scored). */
export function severityFromOsvList(list: readonly OsvSeverityEntry[] | undefined): { severity: Severity; score?: number } | undefined {
  if (!list?.length) return undefined;
  let best: { severity: Severity; score?: number } | undefined;
  for (const major of [3, 2]) {
    for (const e of list) {
      if (e.type === 'Ubuntu') {
        const s = severityFromLabel(e.score);
        if (s && (!best || severityRank(s) > severityRank(best.severity))) best = { severity: s };
        continue;
      }
      const score = major === 3 && e.type === 'CVSS_V3' ? cvss3BaseScore(e.score) : major === 2 && e.type === 'CVSS_V2' ? cvss2BaseScore(e.score) : undefined;
      if (score === undefined) continue;
      if (!best || best.score === undefined || score > best.score) best = { severity: severityFromScore(score, major), score };
    }
    if (best) return best;
  }
  return best;
}

/**
 * Severity of an OSV record (and optionally one of its `affected` entries), in order:
 * 1. the record's `database_specific.severity` label (GHSA's rating);
 * 2. the highest CVSS score computed from the record's `severity[]` vectors;
 * 3. the affected entry's own `severity[]`, then its `ecosystem_specific`/
 *    `database_specific` `severity` or `urgency` (Debian urgency, Ubuntu priority);
 * 4. UNKNOWN.
 */
export function osvSeverity(record: Record<string, unknown>, affected?: Record<string, unknown>): { severity: Severity; score?: number } {
  const dbs = record.database_specific as Record<string, unknown> | undefined;
  const label = severityFromLabel(dbs?.severity);
  const fromList = severityFromOsvList(record.severity as OsvSeverityEntry[] | undefined);
  if (label) return { severity: label, score: fromList?.score };
  if (fromList) return fromList;
  if (affected) {
    const a = severityFromOsvList(affected.severity as OsvSeverityEntry[] | undefined);
    if (a) return a;
    for (const k of ['ecosystem_specific', 'database_specific']) {
      const o = affected[k] as Record<string, unknown> | undefined;
      const s = severityFromLabel(o?.severity) ?? severityFromLabel(o?.urgency);
      if (s) return { severity: s };
    }
  }
  return { severity: 'UNKNOWN' };
}
