import { HangarError } from '../../shared/errors.js';
import { compareApk, isValidApk } from './apk.js';
import { compareDebian, isValidDebian } from './debian.js';
import { comparePep440, isValidPep440 } from './pep440.js';
import { compareRpm } from './rpm.js';
import { compareSemver, isValidSemver } from './semver.js';

export { compareApk, compareDebian, comparePep440, compareRpm, compareSemver };

export interface VersionScheme {
  name: string;
  compare(a: string, b: string): number;
  valid(v: string): boolean;
}

const SCHEMES: Record<string, VersionScheme> = {
  debian: { name: 'debian', compare: compareDebian, valid: isValidDebian },
  apk: { name: 'apk', compare: compareApk, valid: isValidApk },
  semver: { name: 'semver', compare: compareSemver, valid: isValidSemver },
  pep440: { name: 'pep440', compare: comparePep440, valid: isValidPep440 },
  rpm: { name: 'rpm', compare: compareRpm, valid: (v) => v.trim() !== '' },
};

/** The version ordering an OSV ecosystem uses (`Debian:12` → dpkg ordering). Undefined when not supported. */
export function schemeForEcosystem(ecosystem: string): VersionScheme | undefined {
  const base = ecosystem.split(':')[0]!;
  switch (base) {
    case 'Debian':
    case 'Ubuntu':
      return SCHEMES.debian;
    case 'Alpine':
      return SCHEMES.apk;
    case 'npm':
      return SCHEMES.semver;
    case 'PyPI':
      return SCHEMES.pep440;
    case 'AlmaLinux':
    case 'Rocky Linux':
    case 'Red Hat':
      return SCHEMES.rpm;
    default:
      return undefined;
  }
}

export function semverScheme(): VersionScheme {
  return SCHEMES.semver!;
}

/** Compare two versions in an ecosystem's ordering; throws BAD_REQUEST for unknown ecosystems or invalid versions. */
export function compareVersions(ecosystem: string, a: string, b: string): number {
  const s = schemeForEcosystem(ecosystem);
  if (!s) throw new HangarError('BAD_REQUEST', `no version ordering known for ecosystem "${ecosystem}"; supported: Debian, Ubuntu, Alpine, npm, PyPI, AlmaLinux, Rocky Linux`);
  try {
    return s.compare(a, b);
  } catch (e) {
    throw new HangarError('BAD_REQUEST', `${(e as Error).message} (${ecosystem})`);
  }
}
