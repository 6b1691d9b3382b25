import type { Distro } from './types.js';
import { readFile, type FileView } from './files.js';

/** Parse os-release (shell-style KEY=value, optional quotes). */
export function parseOsRelease(text: string): Distro | undefined {
  const kv = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const m = /^\s*([A-Z0-9_]+)=(.*)$/.exec(raw);
    if (!m) continue;
    let v = m[2]!.trim();
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) {
      v = v.slice(1, -1).replace(/\\(["$`\\])/g, '$1');
    }
    kv.set(m[1]!, v);
  }
  const id = kv.get('ID');
  if (!id) return undefined;
  return {
    id: id.toLowerCase(),
    versionId: kv.get('VERSION_ID') || undefined,
    codename: kv.get('VERSION_CODENAME') || undefined,
    prettyName: kv.get('PRETTY_NAME') || undefined,
  };
}

export function detectDistro(view: FileView): Distro | undefined {
  const f = readFile(view, 'etc/os-release') ?? readFile(view, 'usr/lib/os-release');
  return f ? parseOsRelease(f.data.toString('utf8')) : undefined;
}

const DEBIAN_CODENAMES: Record<string, string> = { buster: '10', bullseye: '11', bookworm: '12', trixie: '13' };

/** The OSV ecosystem for the distro's OS packages, e.g. `Debian:12`, `Alpine:v3.19`, `Ubuntu:22.04`. */
export function osvEcosystem(d: Distro | undefined): string | undefined {
  if (!d) return undefined;
  const ver = d.versionId;
  switch (d.id) {
    case 'debian': {
      const major = ver?.split('.')[0] ?? (d.codename ? DEBIAN_CODENAMES[d.codename] : undefined);
      return major ? `Debian:${major}` : undefined;
    }
    case 'ubuntu':
      return ver ? `Ubuntu:${ver}` : undefined;
    case 'alpine': {
      const m = ver ? /^(\d+)\.(\d+)/.exec(ver) : null;
      return m ? `Alpine:v${m[1]}.${m[2]}` : undefined;
    }
    case 'almalinux':
      return ver ? `AlmaLinux:${ver.split('.')[0]}` : undefined;
    case 'rocky':
      return ver ? `Rocky Linux:${ver.split('.')[0]}` : undefined;
    default:
      return undefined;
  }
}

/** purl `distro=` qualifier value: debian-12, ubuntu-22.04, alpine-3.19.1 (the form Syft writes). */
export function purlDistro(d: Distro | undefined): string | undefined {
  if (!d) return undefined;
  const v = d.versionId ?? d.codename;
  return v ? `${d.id}-${v}` : d.id;
}
