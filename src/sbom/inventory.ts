import { HangarError } from '../shared/errors.js';
import type { FileView } from './files.js';
import { dpkgPackages, apkPackages, rpmPackages } from './os-packages.js';
import { npmPackages, pythonPackages } from './lang-packages.js';
import { detectDistro, osvEcosystem } from './osrelease.js';
import type { Inventory, Package } from './types.js';

export interface InventoryOptions {
  /** Return an empty inventory instead of failing when no package data is found. */
  allowEmpty?: boolean;
  /** Used in messages ("image myapp@sha256:..."). */
  label?: string;
}

/** Run every cataloger over the gathered files and merge duplicates (same purl) by location. */
export function buildInventory(view: FileView, opts: InventoryOptions = {}): Inventory {
  const warnings: string[] = [];
  const distro = detectDistro(view);
  const found: Package[] = [
    ...dpkgPackages(view, distro),
    ...apkPackages(view, distro),
    ...rpmPackages(view, distro, warnings),
    ...npmPackages(view, warnings),
    ...pythonPackages(view, warnings),
  ];
  const byPurl = new Map<string, Package>();
  for (const p of found) {
    const seen = byPurl.get(p.purl);
    if (!seen) byPurl.set(p.purl, { ...p, locations: [...p.locations] });
    else for (const l of p.locations) if (!seen.locations.includes(l)) seen.locations.push(l);
  }
  const packages = [...byPurl.values()].sort((a, b) => cmp(a.type, b.type) || cmp(a.name, b.name) || cmp(a.version, b.version) || cmp(a.purl, b.purl));
  for (const p of packages) {
    p.locations.sort();
    dropUndefined(p);
  }
  if (distro) dropUndefined(distro);
  const osTypes = packages.filter((p) => p.type === 'deb' || p.type === 'apk' || p.type === 'rpm');
  if (osTypes.length && !osvEcosystem(distro)) {
    warnings.push(
      distro
        ? `distribution "${distro.id}${distro.versionId ? ' ' + distro.versionId : ''}" has no known OSV ecosystem; its OS packages are listed but cannot be matched against vulnerabilities`
        : 'no /etc/os-release in the image; OS packages are listed but cannot be matched against vulnerabilities',
    );
  }
  if (!packages.length && !opts.allowEmpty) {
    throw new HangarError(
      'NO_PACKAGE_DATA',
      `no package data found in ${opts.label ?? 'the image'}: looked for dpkg, apk and rpm databases, npm lockfiles and node_modules, Python dist-info/egg-info. ` +
        'A scratch or static-binary image has nothing to inventory; there is nothing to scan',
      { status: 422, detail: { warnings } },
    );
  }
  return { schema: 1, distro, packages, warnings };
}

/** Absent, not undefined: the inventory must survive a JSON round trip (the cache) unchanged. */
function dropUndefined(o: object): void {
  for (const [k, v] of Object.entries(o)) if (v === undefined) delete (o as Record<string, unknown>)[k];
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
