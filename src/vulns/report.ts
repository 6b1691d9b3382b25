import type { Finding, MatchResult } from './match.js';
import { countBySeverity } from './match.js';
import { SEVERITIES } from './severity.js';

/**
 * Plain-text table of findings for terminals (no colour: the CLI decides
 * that). One line per finding, then a per-severity summary and warnings.
 */
export function formatFindings(result: Pick<MatchResult, 'findings' | 'warnings'>): string {
  const rows: string[][] = [['SEVERITY', 'ID', 'PACKAGE', 'INSTALLED', 'FIXED', 'SUMMARY']];
  for (const f of result.findings) {
    rows.push([f.severity, f.id, f.sourcePackage ? `${f.package} (${f.sourcePackage})` : f.package, f.installedVersion, f.fixedVersion ?? '(none)', truncate(f.summary, 70)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = result.findings.length ? rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()) : ['No known vulnerabilities found.'];
  const counts = countBySeverity(result.findings as Finding[]);
  lines.push('', `Total: ${result.findings.length} (${[...SEVERITIES].reverse().map((s) => `${s}: ${counts[s]}`).join(', ')})`);
  for (const w of result.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n') + '\n';
}

function truncate(s: string, n: number): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > n ? one.slice(0, n - 1) + '…' : one;
}
