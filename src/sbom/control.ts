import { HangarError } from '../shared/errors.js';

export type Stanza = Map<string, string>;

/**
 * Parse deb822 paragraphs (dpkg status, status.d files, PKG-INFO headers
 * use a compatible subset). Field names are case-insensitive: keys are lowercased.
 * Continuation lines append to the previous field.
 */
export function parseDeb822(text: string, where: string): Stanza[] {
  const out: Stanza[] = [];
  let cur: Stanza | undefined;
  let last: string | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '') {
      if (cur) out.push(cur);
      cur = undefined;
      last = undefined;
      continue;
    }
    if (line.startsWith('#') && !cur) continue;
    if (line[0] === ' ' || line[0] === '\t') {
      if (!cur || last === undefined) throw malformed(where, i + 1, 'continuation line outside a field');
      cur.set(last, cur.get(last) + '\n' + line.trim());
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0 || /\s/.test(line.slice(0, colon))) throw malformed(where, i + 1, `expected "Field: value", got "${line.slice(0, 60)}"`);
    cur ??= new Map();
    last = line.slice(0, colon).toLowerCase();
    cur.set(last, line.slice(colon + 1).trim());
  }
  if (cur) out.push(cur);
  return out;
}

export function malformed(where: string, line: number, what: string): HangarError {
  return new HangarError('SBOM_MALFORMED_DB', `package database ${where} is malformed at line ${line}: ${what}. The image's package list cannot be trusted; rebuild the image or repair the file`);
}
