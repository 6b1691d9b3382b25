import { lstatSync, readdirSync, readlinkSync, existsSync, readFileSync, createReadStream, type Stats } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { HangarError } from '../shared/errors.js';
import { DockerIgnore } from './dockerignore.js';

export interface ContextEntry {
  /** Path inside the context, `/`-separated. */
  name: string;
  abs: string;
  type: 'file' | 'dir' | 'symlink';
  size: number;
  mode: number;
  mtime: number;
  linkname?: string;
}

export interface ContextPlan {
  entries: ContextEntry[];
  /** Total bytes of file content. */
  bytes: number;
  dockerfile: string;
  excluded: number;
}

/**
 * Decide what goes into the build context: everything in `dir` that
 * .dockerignore does not exclude, plus the Dockerfile and .dockerignore
 * themselves (Docker always sends them; COPY still skips them when ignored).
 */
export function planContext(dir: string, dockerfile = 'Dockerfile', ignoreFile?: string): ContextPlan {
  const root = resolve(dir);
  if (!existsSync(root) || !lstatSync(root).isDirectory()) throw new HangarError('BAD_CONTEXT', `build context ${dir} is not a directory`, { status: 400 });
  const dfAbs = resolve(root, dockerfile);
  if (!existsSync(dfAbs)) {
    throw new HangarError('NO_DOCKERFILE', `no Dockerfile at ${dfAbs}: create one, pass --dockerfile PATH, or set [build] image in hangar.toml to deploy a prebuilt image`, { status: 400 });
  }
  const dfRel = relative(root, dfAbs).split(sep).join('/');
  const ignorePath = ignoreFile ? resolve(root, ignoreFile) : existsSync(`${dfAbs}.dockerignore`) ? `${dfAbs}.dockerignore` : join(root, '.dockerignore');
  const ignore = new DockerIgnore(existsSync(ignorePath) ? readFileSync(ignorePath, 'utf8') : '');
  const always = new Set([dfRel, '.dockerignore']);
  const entries: ContextEntry[] = [];
  let bytes = 0;
  let excluded = 0;
  const walk = (absDir: string) => {
    for (const name of readdirSync(absDir).sort()) {
      const abs = join(absDir, name);
      const rel = relative(root, abs).split(sep).join('/');
      const st: Stats = lstatSync(abs);
      const isDir = st.isDirectory();
      const ignored = ignore.ignores(rel) && !always.has(rel);
      if (ignored) {
        excluded++;
        if (isDir && ignore.mayReinclude(rel)) walk(abs);
        continue;
      }
      if (isDir) {
        entries.push({ name: rel, abs, type: 'dir', size: 0, mode: st.mode & 0o7777, mtime: st.mtimeMs });
        walk(abs);
      } else if (st.isSymbolicLink()) {
        entries.push({ name: rel, abs, type: 'symlink', size: 0, mode: 0o777, mtime: st.mtimeMs, linkname: readlinkSync(abs) });
      } else if (st.isFile()) {
        entries.push({ name: rel, abs, type: 'file', size: st.size, mode: st.mode & 0o7777, mtime: st.mtimeMs });
        bytes += st.size;
      }
      // sockets, fifos, devices: not part of a build context
    }
  };
  walk(root);
  // A Dockerfile outside the context directory is sent under a fixed name.
  if (!entries.some((e) => e.name === dfRel)) {
    const st = lstatSync(dfAbs);
    const name = dfRel.startsWith('..') ? '.hangar.Dockerfile' : dfRel;
    entries.push({ name, abs: dfAbs, type: 'file', size: st.size, mode: st.mode & 0o7777, mtime: st.mtimeMs });
    bytes += st.size;
    return { entries, bytes, dockerfile: name, excluded };
  }
  return { entries, bytes, dockerfile: dfRel, excluded };
}

// --- tar -------------------------------------------------------------------------

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, e: ContextEntry, typeflag: string, size: number, linkname = ''): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, 'utf8');
  b.write(octal(e.mode, 8), 100, 'ascii');
  b.write(octal(0, 8), 108, 'ascii');
  b.write(octal(0, 8), 116, 'ascii');
  b.write(octal(size, 12), 124, 'ascii');
  b.write(octal(Math.floor(e.mtime / 1000), 12), 136, 'ascii');
  b.write('        ', 148, 'ascii');
  b.write(typeflag, 156, 'ascii');
  b.write(linkname, 157, 100, 'utf8');
  b.write('ustar\x0000', 257, 'ascii');
  let sum = 0;
  for (const x of b) sum += x;
  b.write(octal(sum, 7) + ' ', 148, 'ascii');
  return b;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

function entryHeaders(e: ContextEntry): Buffer[] {
  const name = e.type === 'dir' ? e.name + '/' : e.name;
  const link = e.linkname ?? '';
  const out: Buffer[] = [];
  const records: string[] = [];
  if (Buffer.byteLength(name) > 100) records.push(paxRecord('path', name));
  if (Buffer.byteLength(link) > 100) records.push(paxRecord('linkpath', link));
  if (e.size > 0o77777777777) records.push(paxRecord('size', String(e.size)));
  if (records.length) {
    const body = Buffer.from(records.join(''));
    out.push(header('PaxHeaders/' + name.slice(-80), e, 'x', body.length), body, pad(body.length));
  }
  const size = e.type === 'file' ? Math.min(e.size, 0o77777777777) : 0;
  out.push(header(name.slice(0, 100), e, e.type === 'file' ? '0' : e.type === 'dir' ? '5' : '2', size, link.slice(0, 100)));
  return out;
}

/**
 * The context as a tar stream (files read as they are sent, so big contexts
 * never sit in memory). `onProgress` gets the bytes of file content sent.
 */
export function contextTarStream(plan: ContextPlan, onProgress?: (sent: number, total: number) => void): Readable {
  async function* gen() {
    let sent = 0;
    for (const e of plan.entries) {
      for (const h of entryHeaders(e)) yield h;
      if (e.type !== 'file') continue;
      let n = 0;
      for await (const chunk of createReadStream(e.abs, { highWaterMark: 1 << 20 })) {
        const c = chunk as Buffer;
        // A file that grew while being sent is cut at its planned size.
        const take = c.subarray(0, Math.max(0, e.size - n));
        n += take.length;
        sent += take.length;
        if (take.length) yield take;
        if (n >= e.size) break;
      }
      if (n < e.size) throw new HangarError('BAD_CONTEXT', `${e.name} shrank while the build context was being sent; try again`, { status: 400 });
      yield pad(e.size);
      onProgress?.(sent, plan.bytes);
    }
    yield Buffer.alloc(1024);
  }
  return Readable.from(gen(), { objectMode: false });
}
