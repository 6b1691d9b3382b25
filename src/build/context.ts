import { lstatSync, readdirSync, readlinkSync, existsSync, readFileSync, createReadStream, type Stats } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { HangarError } from '../shared/errors.js';
import { DockerIgnore } from './dockerignore.js';
import { encodeHeader, endOfArchive, padding } from './tar-header.js';

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

/** The tar header of a context entry: owned by root (the daemon extracts without owners anyway). */
function entryHeader(e: ContextEntry): Buffer {
  return encodeHeader({
    name: e.type === 'dir' ? `${e.name}/` : e.name,
    type: e.type,
    mode: e.mode,
    uid: 0,
    gid: 0,
    size: e.type === 'file' ? e.size : 0,
    mtime: Math.floor(e.mtime / 1000),
    ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
  });
}

/** Files up to this size are read whole; bigger ones are streamed. */
const SMALL_FILE = 256 * 1024;

/**
 * The context as a tar stream (files read as they are sent, so big contexts
 * never sit in memory). `onProgress` gets the bytes of file content sent.
 */
export function contextTarStream(plan: ContextPlan, onProgress?: (sent: number, total: number) => void): Readable {
  async function* gen() {
    let sent = 0;
    for (const e of plan.entries) {
      yield entryHeader(e);
      if (e.type !== 'file') continue;
      if (e.size <= SMALL_FILE) {
        // Small files in one read: most of a context, and far fewer turns of the event loop.
        const data = readFileSync(e.abs);
        if (data.length < e.size) throw new HangarError('BAD_CONTEXT', `${e.name} shrank while the build context was being sent; try again`, { status: 400 });
        sent += e.size;
        yield data.subarray(0, e.size);
        yield Buffer.alloc(padding(e.size));
        onProgress?.(sent, plan.bytes);
        continue;
      }
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
      yield Buffer.alloc(padding(e.size));
      onProgress?.(sent, plan.bytes);
    }
    yield endOfArchive();
  }
  return Readable.from(gen(), { objectMode: false });
}
