import { createHash, randomUUID } from 'node:crypto';
import { HangarError } from '../shared/errors.js';
import type { Inventory, Package } from './types.js';

export type SbomFormat = 'spdx' | 'cyclonedx';

export interface SbomDocumentOptions {
  /** What the SBOM describes, e.g. `myapp:deployment-1700000000` or a directory. */
  name: string;
  /** Manifest digest of the image, when there is one. */
  digest?: string;
  /** Fixed values make the output byte-for-byte reproducible (tests, caching). */
  timestamp?: Date;
  uuid?: string;
  toolVersion?: string;
}

const TOOL = 'hangar';

/** Render an inventory as an SPDX 2.3 or CycloneDX 1.5 JSON document. */
export function renderSbom(inv: Inventory, format: SbomFormat, opts: SbomDocumentOptions): Record<string, unknown> {
  if (format === 'spdx') return toSpdx(inv, opts);
  if (format === 'cyclonedx') return toCycloneDx(inv, opts);
  throw new HangarError('BAD_REQUEST', `unknown SBOM format "${String(format)}"; use spdx or cyclonedx`);
}

export function parseSbomFormat(s: string | undefined): SbomFormat {
  const v = (s ?? 'spdx').toLowerCase();
  if (v === 'spdx' || v === 'spdx-json') return 'spdx';
  if (v === 'cyclonedx' || v === 'cdx' || v === 'cyclonedx-json') return 'cyclonedx';
  throw new HangarError('BAD_REQUEST', `unknown SBOM format "${s}"; use spdx or cyclonedx`);
}

function isoSeconds(d: Date): string {
  // SPDX requires YYYY-MM-DDThh:mm:ssZ (no fractional seconds).
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function spdxId(p: Package): string {
  const safe = p.name.replace(/[^A-Za-z0-9.-]+/g, '-').slice(0, 60);
  const h = createHash('sha256').update(p.purl).digest('hex').slice(0, 12);
  return `SPDXRef-Package-${p.type}-${safe}-${h}`;
}

/**
 * Package metadata licences are free text; SPDX wants an expression. Pass
 * through only what looks like one (identifiers joined by AND/OR/WITH) and
 * say NOASSERTION otherwise rather than emit an invalid document.
 */
export function spdxLicense(raw: string | undefined): string {
  if (!raw) return 'NOASSERTION';
  const tokens = raw.replace(/[()]/g, ' ').trim().split(/\s+/);
  const ok = tokens.every((t, i) => (i % 2 === 1 ? /^(AND|OR|WITH)$/.test(t) : /^(LicenseRef-)?[A-Za-z0-9][A-Za-z0-9.+-]*$/.test(t)));
  return ok && tokens.length % 2 === 1 ? raw.trim() : 'NOASSERTION';
}

/** SPDX writes contacts as `Name (email)`; package metadata has `Name <email>`. */
function spdxParty(s: string): string {
  return s.replace(/\s+/g, ' ').replace(/\s*<([^>]*)>/, ' ($1)').trim();
}

export function toSpdx(inv: Inventory, opts: SbomDocumentOptions): Record<string, unknown> {
  const uuid = opts.uuid ?? randomUUID();
  const rootId = 'SPDXRef-Image';
  const root: Record<string, unknown> = {
    name: opts.name,
    SPDXID: rootId,
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    licenseConcluded: 'NOASSERTION',
    licenseDeclared: 'NOASSERTION',
    copyrightText: 'NOASSERTION',
    primaryPackagePurpose: 'CONTAINER',
  };
  if (opts.digest) {
    root.versionInfo = opts.digest;
    const [alg, hex] = opts.digest.split(':');
    if (alg === 'sha256' && hex) root.checksums = [{ algorithm: 'SHA256', checksumValue: hex }];
  }
  if (inv.distro) root.comment = `operating system: ${inv.distro.prettyName ?? [inv.distro.id, inv.distro.versionId].filter(Boolean).join(' ')}`;
  const packages = inv.packages.map((p) => {
    const o: Record<string, unknown> = {
      name: p.name,
      SPDXID: spdxId(p),
      versionInfo: p.version,
      supplier: p.supplier ? `Organization: ${spdxParty(p.supplier)}` : 'NOASSERTION',
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      licenseConcluded: 'NOASSERTION',
      licenseDeclared: spdxLicense(p.license),
      copyrightText: 'NOASSERTION',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: p.purl }],
      primaryPackagePurpose: p.type === 'npm' || p.type === 'pypi' ? 'LIBRARY' : 'INSTALL',
      sourceInfo: `found in ${p.locations.join(', ')}`,
    };
    if (p.homepage && /^https?:\/\//.test(p.homepage)) o.homepage = p.homepage;
    if (p.description) o.summary = p.description;
    if (p.sourceName && p.sourceName !== p.name) o.comment = `source package ${p.sourceName} ${p.sourceVersion ?? ''}`.trim();
    return o;
  });
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: opts.name,
    documentNamespace: `https://hangar.local/spdx/${encodeURIComponent(opts.name)}-${uuid}`,
    creationInfo: {
      created: isoSeconds(opts.timestamp ?? new Date()),
      creators: [`Tool: ${TOOL}-${opts.toolVersion ?? '0.1.0'}`],
    },
    documentDescribes: [rootId],
    packages: [root, ...packages],
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: rootId },
      ...packages.map((p) => ({ spdxElementId: rootId, relationshipType: 'CONTAINS', relatedSpdxElement: p.SPDXID })),
    ],
  };
}

export function toCycloneDx(inv: Inventory, opts: SbomDocumentOptions): Record<string, unknown> {
  const uuid = opts.uuid ?? randomUUID();
  const components: Record<string, unknown>[] = [];
  if (inv.distro) {
    components.push({
      type: 'operating-system',
      'bom-ref': `os:${inv.distro.id}`,
      name: inv.distro.id,
      ...(inv.distro.versionId ? { version: inv.distro.versionId } : {}),
      ...(inv.distro.prettyName ? { description: inv.distro.prettyName } : {}),
    });
  }
  for (const p of inv.packages) {
    const scoped = p.type === 'npm' ? /^(@[^/]+)\/(.+)$/.exec(p.name) : null;
    const c: Record<string, unknown> = {
      type: 'library',
      'bom-ref': p.purl,
      ...(scoped ? { group: scoped[1], name: scoped[2] } : { name: p.name }),
      version: p.version,
      purl: p.purl,
    };
    if (p.supplier) c.supplier = { name: p.supplier };
    if (p.description) c.description = p.description;
    if (p.license) c.licenses = [{ license: { name: p.license } }];
    if (p.homepage && /^https?:\/\//.test(p.homepage)) c.externalReferences = [{ type: 'website', url: p.homepage }];
    const props = [
      ...p.locations.map((l) => ({ name: 'hangar:location', value: l })),
      ...(p.sourceName && p.sourceName !== p.name ? [{ name: 'hangar:source-package', value: `${p.sourceName} ${p.sourceVersion ?? ''}`.trim() }] : []),
      ...(p.ecosystem ? [{ name: 'hangar:osv-ecosystem', value: p.ecosystem }] : []),
    ];
    c.properties = props;
    components.push(c);
  }
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    serialNumber: `urn:uuid:${uuid}`,
    version: 1,
    metadata: {
      timestamp: isoSeconds(opts.timestamp ?? new Date()),
      tools: { components: [{ type: 'application', name: TOOL, version: opts.toolVersion ?? '0.1.0' }] },
      component: { type: 'container', 'bom-ref': 'image', name: opts.name, ...(opts.digest ? { version: opts.digest } : {}) },
    },
    components,
    dependencies: [{ ref: 'image', dependsOn: components.map((c) => c['bom-ref'] as string) }],
  };
}
