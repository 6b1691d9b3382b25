/**
 * CVSS base scores computed from vectors, so an advisory that only carries
 * a vector (most OSV records) still gets a severity.
 */

function metrics(vector: string, prefix: RegExp): Map<string, string> | undefined {
  const body = vector.trim().replace(prefix, '');
  const m = new Map<string, string>();
  for (const part of body.split('/')) {
    if (!part) continue;
    const [k, v] = part.split(':');
    if (!k || !v) return undefined;
    m.set(k, v);
  }
  return m;
}

/** CVSS v3.0/v3.1 base score, or undefined if the vector is not a valid v3 base vector. */
export function cvss3BaseScore(vector: string): number | undefined {
  const version = /^CVSS:3\.([01])\//.exec(vector.trim())?.[1];
  if (version === undefined) return undefined;
  const m = metrics(vector, /^CVSS:3\.[01]\//);
  if (!m) return undefined;
  const S = m.get('S');
  const AV = ({ N: 0.85, A: 0.62, L: 0.55, P: 0.2 } as Record<string, number>)[m.get('AV') ?? ''];
  const AC = ({ L: 0.77, H: 0.44 } as Record<string, number>)[m.get('AC') ?? ''];
  const PR = (S === 'C' ? { N: 0.85, L: 0.68, H: 0.5 } : ({ N: 0.85, L: 0.62, H: 0.27 } as Record<string, number>))[m.get('PR') ?? ''];
  const UI = ({ N: 0.85, R: 0.62 } as Record<string, number>)[m.get('UI') ?? ''];
  const cia = { H: 0.56, L: 0.22, N: 0 } as Record<string, number>;
  const C = cia[m.get('C') ?? ''];
  const I = cia[m.get('I') ?? ''];
  const A = cia[m.get('A') ?? ''];
  if (AV === undefined || AC === undefined || PR === undefined || UI === undefined || C === undefined || I === undefined || A === undefined) return undefined;
  if (S !== 'U' && S !== 'C') return undefined;
  const iss = 1 - (1 - C) * (1 - I) * (1 - A);
  const impact = S === 'U' ? 6.42 * iss : 7.52 * (iss - 0.029) - 3.25 * Math.pow(iss - 0.02, 15);
  const exploitability = 8.22 * AV * AC * PR * UI;
  if (impact <= 0) return 0;
  const raw = S === 'U' ? Math.min(impact + exploitability, 10) : Math.min(1.08 * (impact + exploitability), 10);
  return version === '1' ? roundUp31(raw) : Math.ceil(raw * 10) / 10;
}

/** CVSS v3.1 Roundup (Appendix A): avoids floating-point artefacts such as 4.000000001 -> 4.1. */
function roundUp31(x: number): number {
  const i = Math.round(x * 100000);
  return i % 10000 === 0 ? i / 100000 : (Math.floor(i / 10000) + 1) / 10;
}

/** CVSS v2 base score, or undefined if the vector is not a valid v2 base vector. */
export function cvss2BaseScore(vector: string): number | undefined {
  const m = metrics(vector, /^\(?(CVSS:2\.0\/)?/);
  if (!m) return undefined;
  const AV = ({ L: 0.395, A: 0.646, N: 1.0 } as Record<string, number>)[m.get('AV') ?? ''];
  const AC = ({ H: 0.35, M: 0.61, L: 0.71 } as Record<string, number>)[m.get('AC') ?? ''];
  const Au = ({ M: 0.45, S: 0.56, N: 0.704 } as Record<string, number>)[m.get('Au') ?? ''];
  const cia = { N: 0, P: 0.275, C: 0.66 } as Record<string, number>;
  const C = cia[(m.get('C') ?? '').replace(/\)$/, '')];
  const I = cia[m.get('I') ?? ''];
  const A = cia[(m.get('A') ?? '').replace(/\)$/, '')];
  if (AV === undefined || AC === undefined || Au === undefined || C === undefined || I === undefined || A === undefined) return undefined;
  const impact = 10.41 * (1 - (1 - C) * (1 - I) * (1 - A));
  const exploitability = 20 * AV * AC * Au;
  const f = impact === 0 ? 0 : 1.176;
  return Math.round((0.6 * impact + 0.4 * exploitability - 1.5) * f * 10) / 10;
}
