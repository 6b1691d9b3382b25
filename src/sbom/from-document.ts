import { HangarError } from '../shared/errors.js';
import { osvEcosystem } from './osrelease.js';
import type { Distro, Inventory, Package, PackageType } from './types.js';

export interface ParsedPurl {
  type: string;
  namespace?: string;
  name: string;
  version?: string;
  qualifiers: Record<string, string>;
}

export function parsePurl(s: string): ParsedPurl | undefined {
  const m = /^pkg:([a-zA-Z][a-zA-Z0-9.+-]*)\/([^?#@]+)(?:@([^?#]+))?(?:\?([^#]*))?(?:#.*)?$/.exec(s.trim());
  if (!m) return undefined;
  try {
    const segs = m[2]!.split('/').filter(Boolean).map(decodeURIComponent);
    const name = segs.pop();
    if (!name) return undefined;
    const qualifiers: Record<string, string> = {};
    for (const kv of (m[4] ?? '').split('&').filter(Boolean)) {
      const eq = kv.indexOf('=');
      if (eq > 0) qualifiers[kv.slice(0, eq).toLowerCase()] = decodeURIComponent(kv.slice(eq + 1));
    }
    return { type: m[1]!.toLowerCase(), namespace: segs.length ? segs.join('/') : undefined, name, version: m[3] ? decodeURIComponent(m[3]) : undefined, qualifiers };
  } catch {
    return undefined; // malformed percent-encoding
  }
}

/** `debian-12`, `ubuntu-22.04`, `alpine-3.19.1` or a bare `3.19.1` (Trivy, apk). */
function distroFromQualifier(type: string, namespace: string | undefined, q: string | undefined): Distro | undefined {
  if (!q) return undefined;
  const m = /^([a-z]+)-(.+)$/.exec(q);
  if (m) return { id: m[1]!, versionId: m[2]! };
  const id = namespace ?? (type === 'apk' ? 'alpine' : undefined);
  return id ? { id, versionId: q } : undefined;
}

type Props = Map<string, string[]>;

/** Source package name/version from whichever convention the SBOM producer used. */
function sourceOf(props: Props, purl: ParsedPurl, comment?: string): { name?: string; version?: string } {
  const hangar = props.get('hangar:source-package')?.[0] ?? /^source package (.+)$/.exec(comment ?? '')?.[1];
  if (hangar) {
    const [name, version] = hangar.split(' ');
    return { name, version };
  }
  const trivy = { name: props.get('aquasecurity:trivy:SrcName')?.[0], version: props.get('aquasecurity:trivy:SrcVersion')?.[0] };
  if (trivy.name) return trivy;
  const syft = { name: props.get('syft:metadata:source')?.[0], version: props.get('syft:metadata:sourceVersion')?.[0] };
  if (syft.name) return syft;
  const up = purl.qualifiers.upstream;
  if (up) {
    const at = up.indexOf('@');
    return at > 0 ? { name: up.slice(0, at), version: up.slice(at + 1) } : { name: up };
  }
  return {};
}

function toPackage(p: ParsedPurl, raw: string, props: Props, distroOut: { d?: Distro }, comment?: string, displayName?: string): Package | undefined {
  const types: Record<string, PackageType> = { deb: 'deb', apk: 'apk', rpm: 'rpm', npm: 'npm', pypi: 'pypi' };
  const type = types[p.type];
  if (!type || !p.version) return undefined;
  // The purl name is normalised (PyPI lower-cases); the document's own name is what the package calls itself.
  const name = displayName || (type === 'npm' && p.namespace ? `${p.namespace}/${p.name}` : p.name);
  let version = p.version;
  if (type === 'rpm' && p.qualifiers.epoch && p.qualifiers.epoch !== '0') version = `${p.qualifiers.epoch}:${version}`;
  const pkg: Package = { type, name, version, locations: props.get('hangar:location') ?? [], purl: raw };
  if (p.qualifiers.arch) pkg.arch = p.qualifiers.arch;
  if (type === 'npm') pkg.ecosystem = 'npm';
  else if (type === 'pypi') pkg.ecosystem = 'PyPI';
  else {
    const distro = distroFromQualifier(type, p.namespace, p.qualifiers.distro);
    if (distro && !distroOut.d) distroOut.d = distro;
    pkg.ecosystem = osvEcosystem(distro);
    const src = sourceOf(props, p, comment);
    pkg.sourceName = src.name ?? name;
    pkg.sourceVersion = src.version ?? version;
  }
  const explicit = props.get('hangar:osv-ecosystem')?.[0];
  if (explicit) pkg.ecosystem = explicit;
  if (!pkg.ecosystem) delete pkg.ecosystem;
  return pkg;
}

/**
 * Read an SPDX 2.x or CycloneDX 1.x JSON document (Hangar's own, Syft's,
 * Trivy's...) back into an inventory via its purls, so vulnerabilities can
 * be matched for an SBOM produced elsewhere. Source-package data is taken
 * from the producer's properties when present; without it, OS packages are
 * matched by binary name, which finds less than a scan of the image.
 */
export function inventoryFromSbomDocument(doc: unknown): Inventory {
  if (!doc || typeof doc !== 'object') throw new HangarError('BAD_REQUEST', 'the SBOM is not a JSON object; give an SPDX or CycloneDX JSON document');
  const d = doc as Record<string, unknown>;
  const out: Package[] = [];
  const warnings: string[] = [];
  const distro: { d?: Distro } = {};
  let unknown = 0;
  const add = (raw: unknown, props: Props, comment?: string, displayName?: string) => {
    if (typeof raw !== 'string') return;
    const p = parsePurl(raw);
    const pkg = p && toPackage(p, raw, props, distro, comment, displayName);
    if (pkg) out.push(pkg);
    else unknown++;
  };
  if (d.bomFormat === 'CycloneDX') {
    const walk = (list: unknown) => {
      if (!Array.isArray(list)) return;
      for (const c of list as Array<Record<string, unknown>>) {
        const props: Props = new Map();
        for (const p of (Array.isArray(c.properties) ? c.properties : []) as Array<{ name?: string; value?: string }>) {
          if (p.name && typeof p.value === 'string') props.set(p.name, [...(props.get(p.name) ?? []), p.value]);
        }
        const name = typeof c.name === 'string' ? c.name : undefined;
        const group = typeof c.group === 'string' && c.group ? c.group : undefined;
        if (c.purl) add(c.purl, props, undefined, group && name && !name.startsWith(group + '/') ? `${group}/${name}` : name);
        walk(c.components);
      }
    };
    walk(d.components);
  } else if (typeof d.spdxVersion === 'string') {
    for (const p of (Array.isArray(d.packages) ? d.packages : []) as Array<Record<string, unknown>>) {
      const ref = ((p.externalRefs ?? []) as Array<Record<string, unknown>>).find((r) => r.referenceType === 'purl');
      if (ref) add(ref.referenceLocator, new Map(), typeof p.comment === 'string' ? p.comment : undefined, typeof p.name === 'string' ? p.name : undefined);
    }
  } else {
    throw new HangarError('BAD_REQUEST', 'unrecognised SBOM: expected CycloneDX JSON (bomFormat) or SPDX JSON (spdxVersion)');
  }
  if (unknown) warnings.push(`${unknown} component(s) have no purl of a supported type (deb, apk, rpm, npm, pypi) and were skipped`);
  if (!out.length) throw new HangarError('NO_PACKAGE_DATA', 'the SBOM lists no packages with a supported purl (deb, apk, rpm, npm, pypi); nothing to scan', { status: 422 });
  out.sort((a, b) => (a.purl < b.purl ? -1 : a.purl > b.purl ? 1 : 0));
  return { schema: 1, ...(distro.d ? { distro: distro.d } : {}), packages: out, warnings };
}
