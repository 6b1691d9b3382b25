import Database from 'better-sqlite3';
import { HangarError } from '../shared/errors.js';
import { malformed, parseDeb822 } from './control.js';
import { readFile, type FileView } from './files.js';
import { osvEcosystem, purlDistro } from './osrelease.js';
import { purl } from './purl.js';
import type { Distro, Package } from './types.js';

/** dpkg: /var/lib/dpkg/status plus distroless-style /var/lib/dpkg/status.d/* files. */
export function dpkgPackages(view: FileView, distro: Distro | undefined): Package[] {
  const out: Package[] = [];
  const status = readFile(view, 'var/lib/dpkg/status');
  if (status) out.push(...fromStanzas(status.path, status.data, true, distro));
  const dir = resolveDir(view, 'var/lib/dpkg/status.d');
  for (const [p, data] of view.files) {
    if (p.startsWith(dir + '/') && !p.slice(dir.length + 1).includes('/') && !p.endsWith('.md5sums')) {
      out.push(...fromStanzas(p, data, false, distro));
    }
  }
  return out;
}

function fromStanzas(path: string, data: Buffer, needStatus: boolean, distro: Distro | undefined): Package[] {
  const where = '/' + path;
  const out: Package[] = [];
  const ns = distro?.id === 'ubuntu' ? 'ubuntu' : 'debian';
  for (const s of parseDeb822(data.toString('utf8'), where)) {
    const name = s.get('package');
    if (!name) throw malformed(where, 0, 'a paragraph has no Package field');
    if (needStatus) {
      // "want flag state": only fully installed packages are present in the filesystem.
      const state = (s.get('status') ?? '').split(/\s+/)[2];
      if (state !== 'installed') continue;
    }
    const version = s.get('version');
    if (!version) throw malformed(where, 0, `package ${name} has no Version field`);
    const arch = s.get('architecture');
    const src = /^(\S+)(?:\s+\(([^)]+)\))?/.exec(s.get('source') ?? '');
    out.push({
      type: 'deb',
      name,
      version,
      arch,
      sourceName: src?.[1] ?? name,
      sourceVersion: src?.[2] ?? version,
      supplier: s.get('maintainer'),
      homepage: s.get('homepage'),
      description: s.get('description')?.split('\n')[0],
      locations: [where],
      purl: purl('deb', ns, name, version, { arch, distro: purlDistro(distro) }),
      ecosystem: osvEcosystem(distro),
    });
  }
  return out;
}

function resolveDir(view: FileView, path: string): string {
  // A symlinked status.d is unusual but cheap to honour.
  const target = view.symlinks.get(path);
  return target && !target.startsWith('/') ? path.replace(/[^/]+$/, '') + target : target?.replace(/^\/+/, '') ?? path;
}

/** apk: /lib/apk/db/installed (one "K:value" record per package, blank-line separated). */
export function apkPackages(view: FileView, distro: Distro | undefined): Package[] {
  const f = readFile(view, 'lib/apk/db/installed') ?? readFile(view, 'usr/lib/apk/db/installed');
  if (!f) return [];
  const where = '/' + f.path;
  const out: Package[] = [];
  let rec = new Map<string, string>();
  let startLine = 1;
  const flush = () => {
    if (rec.size === 0) return;
    const name = rec.get('P');
    const version = rec.get('V');
    if (!name || !version) throw malformed(where, startLine, 'record without P: (name) or V: (version)');
    const arch = rec.get('A');
    out.push({
      type: 'apk',
      name,
      version,
      arch,
      sourceName: rec.get('o') ?? name,
      sourceVersion: version,
      license: rec.get('L'),
      supplier: rec.get('m'),
      homepage: rec.get('U'),
      description: rec.get('T'),
      locations: [where],
      purl: purl('apk', 'alpine', name, version, { arch, distro: purlDistro(distro) }),
      ecosystem: osvEcosystem(distro),
    });
    rec = new Map();
  };
  const lines = f.data.toString('utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line === '') {
      flush();
      startLine = i + 2;
      continue;
    }
    if (!/^[A-Za-z]:/.test(line)) throw malformed(where, i + 1, `expected "X:value", got "${line.slice(0, 60)}"`);
    // Only the first occurrence matters for the fields we use (F:/R: repeat).
    if (!rec.has(line[0]!)) rec.set(line[0]!, line.slice(2));
  }
  flush();
  return out;
}

const RPM_TAGS = { NAME: 1000, VERSION: 1001, RELEASE: 1002, EPOCH: 1003, SUMMARY: 1004, VENDOR: 1011, LICENSE: 1014, URL: 1020, ARCH: 1022, SOURCERPM: 1044 };

/**
 * rpm: the sqlite rpmdb (rpm >= 4.16; Fedora 33+, RHEL/Rocky/Alma 9). Headers
 * are parsed directly: no librpm. Berkeley DB and ndb databases (older
 * releases, SUSE) are not readable here and produce a warning instead.
 */
export function rpmPackages(view: FileView, distro: Distro | undefined, warnings: string[]): Package[] {
  const f = readFile(view, 'var/lib/rpm/rpmdb.sqlite') ?? readFile(view, 'usr/lib/sysimage/rpm/rpmdb.sqlite');
  if (!f) {
    for (const legacy of ['var/lib/rpm/Packages', 'var/lib/rpm/Packages.db', 'usr/lib/sysimage/rpm/Packages.db']) {
      if (view.markers.has(legacy)) warnings.push(`/${legacy}: Berkeley DB/ndb rpm databases are not supported; rpm packages are not listed`);
    }
    return [];
  }
  const where = '/' + f.path;
  const copy = Buffer.from(f.data);
  // A WAL-mode database cannot be deserialised as-is; mark it rollback-journal.
  if (copy.length > 19 && copy[18] === 2 && copy[19] === 2) copy[18] = copy[19] = 1;
  let rows: Array<{ blob: Buffer }>;
  try {
    const db = new Database(copy, { readonly: true });
    try {
      rows = db.prepare('SELECT blob FROM Packages ORDER BY hnum').all() as Array<{ blob: Buffer }>;
    } finally {
      db.close();
    }
  } catch (e) {
    throw new HangarError('SBOM_MALFORMED_DB', `rpm database ${where} cannot be read (${(e as Error).message}); rebuild the image or repair the database`, { cause: e });
  }
  const ns = distro?.id ?? 'rpm';
  return rows.map((row, i) => {
    const h = parseRpmHeader(row.blob, `${where} row ${i + 1}`);
    const name = h.str(RPM_TAGS.NAME);
    const ver = h.str(RPM_TAGS.VERSION);
    const rel = h.str(RPM_TAGS.RELEASE);
    if (!name || !ver) throw new HangarError('SBOM_MALFORMED_DB', `rpm database ${where}: header ${i + 1} has no name or version; the database is corrupt`);
    const epoch = h.int(RPM_TAGS.EPOCH);
    const vr = rel ? `${ver}-${rel}` : ver;
    const version = epoch ? `${epoch}:${vr}` : vr;
    const arch = h.str(RPM_TAGS.ARCH);
    const srpm = h.str(RPM_TAGS.SOURCERPM);
    const srcName = srpm ? /^(.+)-[^-]+-[^-]+\.src\.rpm$/.exec(srpm)?.[1] : undefined;
    return {
      type: 'rpm' as const,
      name,
      version,
      arch,
      sourceName: srcName ?? name,
      sourceVersion: version,
      license: h.str(RPM_TAGS.LICENSE),
      supplier: h.str(RPM_TAGS.VENDOR),
      homepage: h.str(RPM_TAGS.URL),
      description: h.str(RPM_TAGS.SUMMARY),
      locations: [where],
      purl: purl('rpm', ns, name, vr, { arch, epoch: epoch ? String(epoch) : undefined, distro: purlDistro(distro) }),
      ecosystem: osvEcosystem(distro),
    };
  });
}

/** Parse an rpm header blob as stored in rpmdb.sqlite: il, dl, il index entries, data store. */
export function parseRpmHeader(blob: Buffer, where: string) {
  const fail = (what: string) => new HangarError('SBOM_MALFORMED_DB', `rpm database ${where}: ${what}; the database is corrupt`);
  if (blob.length < 8) throw fail('header too short');
  const il = blob.readUInt32BE(0);
  const dl = blob.readUInt32BE(4);
  const dataStart = 8 + il * 16;
  if (il > 100000 || dataStart + dl > blob.length) throw fail('header sizes exceed the blob');
  const tags = new Map<number, { type: number; offset: number; count: number }>();
  for (let i = 0; i < il; i++) {
    const o = 8 + i * 16;
    tags.set(blob.readUInt32BE(o), { type: blob.readUInt32BE(o + 4), offset: blob.readInt32BE(o + 8), count: blob.readUInt32BE(o + 12) });
  }
  const cstr = (off: number) => {
    if (off < 0 || off >= dl) throw fail('string offset out of range');
    const start = dataStart + off;
    const end = blob.indexOf(0, start);
    if (end < 0 || end > dataStart + dl) throw fail('unterminated string');
    return blob.toString('utf8', start, end);
  };
  return {
    str(tag: number): string | undefined {
      const t = tags.get(tag);
      // STRING=6, STRING_ARRAY=8, I18NSTRING=9: the first string is the one we want.
      if (!t || (t.type !== 6 && t.type !== 8 && t.type !== 9)) return undefined;
      return cstr(t.offset);
    },
    int(tag: number): number | undefined {
      const t = tags.get(tag);
      if (!t || t.type !== 4 || t.offset < 0 || t.offset + 4 > dl) return undefined;
      return blob.readUInt32BE(dataStart + t.offset);
    },
  };
}
