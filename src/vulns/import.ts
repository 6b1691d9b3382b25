import { createWriteStream } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { HangarError, describeError } from '../shared/errors.js';
import { parseInput } from '../shared/validate.js';
import { nameKey, VulnDb } from './db.js';
import { OsvRecordSchema, type OsvRecord } from './osv.js';
import { osvSeverity } from './severity.js';
import { ZipReader } from './zip.js';

export interface ImportOptions {
  /** Skip files that are not valid OSV records instead of aborting the whole import. */
  skipInvalid?: boolean;
  /** Download limits for URL sources. */
  maxDownloadBytes?: number;
  timeoutMs?: number;
}

export interface ImportResult {
  source: string;
  records: number;
  withdrawn: number;
  skipped: number;
  /** First few problems when skipInvalid is set. */
  problems: string[];
  ecosystems: string[];
}

interface Item {
  name: string;
  load(): Buffer | Promise<Buffer>;
}

/**
 * Load OSV data into the database at `db` (a path or an open VulnDb) from a
 * directory of OSV JSON files, a single JSON file, an OSV export zip
 * (`all.zip`), or an http(s) URL serving either. One transaction: a failed
 * import leaves the database as it was.
 */
export async function importOsv(db: string | VulnDb, source: string, opts: ImportOptions = {}): Promise<ImportResult> {
  const vdb = typeof db === 'string' ? VulnDb.open(db) : db;
  // Claimed before any await: of two imports started together, the first
  // one called runs, whichever finishes listing or downloading first.
  if (vdb.importing) {
    if (typeof db === 'string') vdb.close();
    throw new HangarError('CONFLICT', 'a vulnerability database update is already running; wait for it to finish');
  }
  vdb.importing = true;
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    let local = source;
    if (/^https?:\/\//i.test(source)) {
      const dl = await download(source, opts);
      cleanups.push(() => rm(dl.dir, { recursive: true, force: true }));
      local = dl.file;
    } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
      throw new HangarError('BAD_REQUEST', `unsupported source ${source}; give a directory, a .zip or .json file, or an http(s) URL`);
    }
    const items = await listItems(local, source, cleanups);
    return await load(vdb, source, items, opts);
  } finally {
    vdb.importing = false;
    for (const c of cleanups.reverse()) await c();
    if (typeof db === 'string') vdb.close();
  }
}

async function listItems(path: string, label: string, cleanups: Array<() => void | Promise<void>>): Promise<Item[]> {
  const st = await stat(path).catch(() => undefined);
  if (!st) throw new HangarError('NOT_FOUND', `${label} does not exist; give a directory of OSV JSON files, an OSV export .zip, or a URL`);
  if (st.isDirectory()) {
    const files = (await readdir(path, { recursive: true, withFileTypes: true }))
      .filter((d) => d.isFile() && d.name.endsWith('.json'))
      .map((d) => join(d.parentPath ?? (d as unknown as { path: string }).path, d.name))
      .sort();
    return files.map((f) => ({ name: relative(path, f), load: () => readFile(f) }));
  }
  const fh = await open(path, 'r');
  const magic = Buffer.alloc(4);
  await fh.read(magic, 0, 4, 0);
  await fh.close();
  if (magic.readUInt32LE(0) === 0x04034b50 || magic.readUInt32LE(0) === 0x06054b50) {
    const zip = new ZipReader(path);
    cleanups.push(() => zip.close());
    return zip.entries.filter((e) => e.name.endsWith('.json') && !e.name.endsWith('/')).map((e) => ({ name: e.name, load: () => zip.read(e) }));
  }
  return [{ name: label, load: () => readFile(path) }];
}

async function load(vdb: VulnDb, source: string, items: Item[], opts: ImportOptions): Promise<ImportResult> {
  if (!items.length) throw new HangarError('VULNDB_EMPTY', `${source} holds no .json files; expected OSV records (e.g. an OSV ecosystem export all.zip)`);
  const d = vdb.db;
  const del = d.prepare('DELETE FROM advisories WHERE id = ?');
  const insAdv = d.prepare('INSERT INTO advisories (id, modified, summary, aliases, severity, score, source) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const insAff = d.prepare('INSERT INTO affected (advisory_id, ecosystem, name, severity, score, ranges, versions) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const insAlias = d.prepare('INSERT INTO aliases (alias, advisory_id) VALUES (?, ?)');
  const insEco = d.prepare('INSERT OR IGNORE INTO ecosystems (ecosystem) VALUES (?)');
  const result: ImportResult = { source, records: 0, withdrawn: 0, skipped: 0, problems: [], ecosystems: [] };
  const ecos = new Set<string>();
  d.exec('BEGIN IMMEDIATE');
  try {
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      let records: OsvRecord[];
      try {
        records = parseRecords(await item.load(), item.name);
      } catch (e) {
        if (!opts.skipInvalid || !(e instanceof HangarError) || e.code !== 'VULNDB_BAD_RECORD') throw e;
        result.skipped++;
        if (result.problems.length < 20) result.problems.push(e.message);
        continue;
      }
      for (const r of records) {
        del.run(r.id);
        if (r.withdrawn) {
          result.withdrawn++;
          continue;
        }
        const top = osvSeverity(r as Record<string, unknown>);
        const aliases = [...new Set([...(r.aliases ?? []), ...(r.upstream ?? [])])].filter((a) => a !== r.id).sort();
        insAdv.run(r.id, r.modified, r.summary ?? firstLine(r.details), JSON.stringify(aliases), top.severity, top.score ?? null, source);
        for (const a of aliases) insAlias.run(a, r.id);
        for (const a of r.affected ?? []) {
          if (!a.package) continue;
          const sev = osvSeverity(r as Record<string, unknown>, a as Record<string, unknown>);
          const ranges = (a.ranges ?? []).map((x) => ({ type: x.type, events: x.events }));
          insAff.run(r.id, a.package.ecosystem, nameKey(a.package.ecosystem, a.package.name), sev.severity, sev.score ?? null, JSON.stringify(ranges), JSON.stringify(a.versions ?? []));
          ecos.add(a.package.ecosystem);
        }
        result.records++;
      }
      // Large exports: let the daemon's event loop breathe between batches.
      if (i % 2000 === 1999) await new Promise((r) => setImmediate(r));
    }
    for (const e of ecos) insEco.run(e);
    d.prepare('INSERT INTO imports (source, imported_at, records, withdrawn, skipped) VALUES (?, ?, ?, ?, ?)').run(source, new Date().toISOString(), result.records, result.withdrawn, result.skipped);
    d.exec('COMMIT');
  } catch (e) {
    d.exec('ROLLBACK');
    throw e;
  }
  result.ecosystems = [...ecos].sort();
  return result;
}

function firstLine(s: string | null | undefined): string {
  return (s ?? '').split('\n')[0]!.slice(0, 300);
}

function parseRecords(data: Buffer, name: string): OsvRecord[] {
  let json: unknown;
  try {
    json = JSON.parse(data.toString('utf8'));
  } catch (e) {
    throw new HangarError('VULNDB_BAD_RECORD', `${name} is not valid JSON (${(e as Error).message}); nothing was imported. Remove or fix that file, or retry with skipInvalid`);
  }
  const list = Array.isArray(json) ? json : [json];
  return list.map((r, i) => {
    try {
      return parseInput(OsvRecordSchema, r, `OSV record${list.length > 1 ? ` #${i + 1}` : ''} in ${name}`);
    } catch (e) {
      throw new HangarError('VULNDB_BAD_RECORD', `${describeError(e)}; nothing was imported. Remove or fix that file, or retry with skipInvalid`);
    }
  });
}

async function download(url: string, opts: ImportOptions): Promise<{ dir: string; file: string }> {
  const max = opts.maxDownloadBytes ?? 4 * 1024 * 1024 * 1024;
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), opts.timeoutMs ?? 30 * 60 * 1000);
  const dir = await mkdtemp(join(tmpdir(), 'hangar-osv-'));
  try {
    let res: Response;
    try {
      res = await fetch(url, { signal: ctrl.signal, redirect: 'follow' });
    } catch (e) {
      throw new HangarError('UNAVAILABLE', `could not download ${url} (${describeError((e as Error).cause ?? e)}); check the URL and network access, or download the file and pass its path`);
    }
    if (!res.ok || !res.body) throw new HangarError('UNAVAILABLE', `downloading ${url} failed with HTTP ${res.status}; check the URL`);
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > max) throw new HangarError('TOO_LARGE', `${url} is ${declared} bytes, above the ${max}-byte limit`);
    const file = join(dir, 'download');
    const out = createWriteStream(file);
    let total = 0;
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        total += chunk.byteLength;
        if (total > max) throw new HangarError('TOO_LARGE', `${url} is larger than the ${max}-byte limit; download stopped`);
        if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
      }
    } catch (e) {
      if (e instanceof HangarError) throw e;
      throw new HangarError('UNAVAILABLE', `download of ${url} was interrupted (${describeError(e)}); try again`);
    } finally {
      await new Promise<void>((r) => out.end(r));
    }
    return { dir, file };
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
