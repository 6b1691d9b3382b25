/**
 * Package URLs (https://github.com/package-url/purl-spec). Components are
 * percent-encoded except the characters the spec leaves readable; qualifiers
 * are sorted by key so output is deterministic.
 */
export function purl(
  type: string,
  namespace: string | undefined,
  name: string,
  version: string | undefined,
  qualifiers: Record<string, string | undefined> = {},
): string {
  let s = `pkg:${type}/`;
  if (namespace) s += namespace.split('/').map(enc).join('/') + '/';
  s += enc(name);
  if (version) s += '@' + enc(version);
  const q = Object.entries(qualifiers)
    .filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${enc(v)}`);
  if (q.length) s += '?' + q.join('&');
  return s;
}

function enc(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/** PEP 503 name normalisation (also what the purl spec asks for pypi). */
export function normalisePypiName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/** Split an npm package name into purl namespace (`@scope`) and name. */
export function npmPurl(fullName: string, version: string): string {
  const m = /^(@[^/]+)\/(.+)$/.exec(fullName);
  return m ? purl('npm', m[1], m[2]!, version) : purl('npm', undefined, fullName, version);
}
