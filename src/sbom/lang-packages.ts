import type { FileView } from './files.js';
import { normalisePypiName, npmPurl, purl } from './purl.js';
import type { Package } from './types.js';

type Json = Record<string, unknown>;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function npmLicense(p: Json): string | undefined {
  const l = p.license;
  if (typeof l === 'string') return l || undefined;
  if (l && typeof l === 'object' && typeof (l as Json).type === 'string') return (l as Json).type as string;
  if (Array.isArray(p.licenses)) {
    const types = p.licenses.map((x) => (x && typeof x === 'object' ? str((x as Json).type) : str(x))).filter(Boolean);
    return types.length ? types.join(' OR ') : undefined;
  }
  return undefined;
}

/**
 * npm records platform-specific optional packages (esbuild's darwin build...)
 * in the lockfile but installs them only where `os` allows: in a Linux image
 * the others are not present and must not be reported.
 */
function forLinux(os: unknown): boolean {
  if (!Array.isArray(os) || os.length === 0) return true;
  const list = os.filter((x): x is string => typeof x === 'string');
  if (list.includes('!linux')) return false;
  const positive = list.filter((x) => !x.startsWith('!'));
  return positive.length === 0 || positive.includes('linux');
}

function npmPackage(name: string, version: string, where: string, extra: Partial<Package> = {}): Package {
  return { type: 'npm', name, version, locations: [where], purl: npmPurl(name, version), ecosystem: 'npm', ...extra };
}

function parseJson(data: Buffer, where: string, warnings: string[]): Json | undefined {
  try {
    const v = JSON.parse(data.toString('utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Json;
    warnings.push(`${where}: not a JSON object; skipped`);
  } catch (e) {
    warnings.push(`${where}: not valid JSON (${(e as Error).message}); skipped`);
  }
  return undefined;
}

/**
 * npm: package-lock.json (v1 `dependencies` tree, v2/v3 `packages` map) and
 * installed node_modules/<name>/package.json (scoped too). Dev dependencies
 * in lockfiles are skipped: a production image normally does not install them.
 */
export function npmPackages(view: FileView, warnings: string[]): Package[] {
  const out: Package[] = [];
  for (const [path, data] of view.files) {
    const where = '/' + path;
    if (/(^|\/)package-lock\.json$/.test(path)) {
      // A lockfile shipped inside an installed package describes its author's tree, not this image.
      if (path.includes('node_modules/')) continue;
      const lock = parseJson(data, where, warnings);
      if (!lock) continue;
      const packages = lock.packages;
      if (packages && typeof packages === 'object') {
        for (const [key, raw] of Object.entries(packages as Json)) {
          if (!key.includes('node_modules/') || !raw || typeof raw !== 'object') continue;
          const e = raw as Json;
          if (e.link === true || e.dev === true || !forLinux(e.os)) continue;
          const name = str(e.name) ?? key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
          const version = str(e.version);
          if (!version) continue;
          out.push(npmPackage(name, version, where, { license: str(e.license) }));
        }
      } else if (lock.dependencies && typeof lock.dependencies === 'object') {
        const walk = (deps: Json) => {
          for (const [name, raw] of Object.entries(deps)) {
            if (!raw || typeof raw !== 'object') continue;
            const e = raw as Json;
            const version = str(e.version);
            // v1 writes git/file/tarball dependencies as their URL in "version".
            if (e.dev !== true && version && /^\d/.test(version)) out.push(npmPackage(name, version, where));
            if (e.dependencies && typeof e.dependencies === 'object') walk(e.dependencies as Json);
          }
        };
        walk(lock.dependencies as Json);
      } else {
        warnings.push(`${where}: neither "packages" nor "dependencies" found (unknown lockfileVersion ${String(lock.lockfileVersion)}); skipped`);
      }
    } else if (/(^|\/)node_modules\/(@[^/]+\/)?[^/@][^/]*\/package\.json$/.test(path)) {
      const p = parseJson(data, where, warnings);
      if (!p) continue;
      const name = str(p.name);
      const version = str(p.version);
      // Test fixtures and partial packages inside node_modules often lack these.
      if (!name || !version) continue;
      out.push(npmPackage(name, version, where, { license: npmLicense(p), homepage: str(p.homepage), description: str(p.description) }));
    }
  }
  return out;
}

/** Email-style headers up to the first blank line (core metadata: METADATA / PKG-INFO). */
function parseCoreMetadata(text: string): Map<string, string> | undefined {
  const h = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split('\n')) {
    const l = line.replace(/\r$/, '');
    if (l === '') break;
    if ((l[0] === ' ' || l[0] === '\t') && last) {
      h.set(last, h.get(last) + ' ' + l.trim());
      continue;
    }
    const m = /^([A-Za-z0-9-]+):\s?(.*)$/.exec(l);
    if (!m) return undefined;
    last = m[1]!.toLowerCase();
    // Repeated headers (Classifier...) keep the first value; we only read single-valued ones.
    if (!h.has(last)) h.set(last, m[2]!.trim());
  }
  return h;
}

/** Python: *.dist-info/METADATA (wheels, pip) and *.egg-info/PKG-INFO or a bare *.egg-info file. */
export function pythonPackages(view: FileView, warnings: string[]): Package[] {
  const out: Package[] = [];
  for (const [path, data] of view.files) {
    if (!/\.dist-info\/METADATA$|\.egg-info\/PKG-INFO$|\.egg-info$/.test(path)) continue;
    const where = '/' + path;
    const h = parseCoreMetadata(data.toString('utf8'));
    const name = h?.get('name');
    const version = h?.get('version');
    if (!h || !name || !version) {
      warnings.push(`${where}: not valid Python package metadata (needs Name: and Version: headers); skipped`);
      continue;
    }
    const license = h.get('license-expression') ?? h.get('license');
    out.push({
      type: 'pypi',
      name,
      version,
      license: license && license !== 'UNKNOWN' && license.length < 200 ? license : undefined,
      supplier: h.get('author') || undefined,
      homepage: h.get('home-page') || undefined,
      description: h.get('summary') || undefined,
      locations: [where],
      purl: purl('pypi', undefined, normalisePypiName(name), version),
      ecosystem: 'PyPI',
    });
  }
  return out;
}
