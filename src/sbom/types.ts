export type PackageType = 'deb' | 'apk' | 'rpm' | 'npm' | 'pypi';

export interface Distro {
  /** os-release ID, e.g. debian, alpine, ubuntu, rocky. */
  id: string;
  versionId?: string;
  codename?: string;
  prettyName?: string;
}

export interface Package {
  type: PackageType;
  name: string;
  /** Version as the package manager writes it (deb/rpm include the epoch as `E:`). */
  version: string;
  arch?: string;
  /** OS packages: the source package the vulnerability feeds are keyed by. */
  sourceName?: string;
  sourceVersion?: string;
  license?: string;
  supplier?: string;
  homepage?: string;
  description?: string;
  /** Image paths (leading slash) of the files this package was read from. */
  locations: string[];
  purl: string;
  /** OSV ecosystem (e.g. `Debian:12`, `Alpine:v3.19`, `npm`, `PyPI`); undefined when unknown. */
  ecosystem?: string;
}

export interface Inventory {
  /** Bumped when the shape changes so cached inventories are recomputed. */
  schema: 1;
  distro?: Distro;
  packages: Package[];
  /** Non-fatal problems (a malformed language metadata file, an unknown distro...). */
  warnings: string[];
}
