import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../shared/process.js';
import type { LayerBlob } from './layer-tar.js';

/**
 * The native builder's layer cache, under <data>/build/native:
 *
 *   layers/<id>/   one directory per layer, in overlay upper-dir form; RUN
 *                  steps stack them as overlay lower dirs
 *   bases/<id>/    base images flattened once (by manifest digest)
 *   steps/<key>    step cache: key (hash of the parent step's key and the
 *                  instruction with everything it depends on) → its layer
 *
 * Entries are JSON written with rename, so a crash leaves an old entry or
 * none. Layer blobs live in the registry's content store; an entry's blob is
 * only a hint (the registry's gc may have dropped it: it is rebuilt from
 * the directory, byte for byte, when needed).
 */
export interface StepRecord {
  /** Layer directory id, or null when the step changed nothing on disk. */
  layer: string | null;
  blob?: LayerBlob;
  /** The layer dir may carry extended attributes (a RUN's upper dir); false for dirs Hangar wrote (COPY, WORKDIR). */
  xattrs?: boolean;
  /** Bytes on disk of the layer directory, for pruning. */
  bytes: number;
  created: string;
}

export class BuildCache {
  readonly root: string;
  /** Layer and base directories builds are using now: never pruned. */
  private readonly inUse = new Map<string, number>();

  constructor(root: string) {
    this.root = root;
    for (const d of ['layers', 'bases', 'steps', 'tmp']) mkdirSync(join(root, d), { recursive: true, mode: 0o700 });
  }

  /** Relative to `root`, for overlay's length-limited option string. */
  layerDir(id: string): string {
    return join('layers', id);
  }

  baseDir(manifestDigest: string): string {
    return join('bases', manifestDigest.replace(':', '-').slice(0, 40));
  }

  abs(rel: string): string {
    return join(this.root, rel);
  }

  newLayer(): { id: string; dir: string } {
    const id = randomBytes(8).toString('hex');
    const dir = this.layerDir(id);
    mkdirSync(this.abs(dir), { mode: 0o755 });
    return { id, dir };
  }

  tmp(prefix: string): string {
    const p = join(this.root, 'tmp', `${prefix}${randomBytes(6).toString('hex')}`);
    mkdirSync(p, { mode: 0o700 });
    return p;
  }

  get(key: string): StepRecord | undefined {
    const f = join(this.root, 'steps', key);
    let rec: StepRecord;
    try {
      rec = JSON.parse(readFileSync(f, 'utf8')) as StepRecord;
    } catch {
      return undefined;
    }
    if (rec.layer !== null && !existsSync(this.abs(this.layerDir(rec.layer)))) return undefined;
    const now = new Date();
    try {
      utimesSync(f, now, now);
    } catch {
      // Pruned meanwhile: the record read is still whole.
    }
    return rec;
  }

  put(key: string, rec: StepRecord): void {
    const f = join(this.root, 'steps', key);
    writeFileSync(`${f}.tmp`, JSON.stringify(rec));
    renameSync(`${f}.tmp`, f);
  }

  hold(dirs: string[]): () => void {
    for (const d of dirs) this.inUse.set(d, (this.inUse.get(d) ?? 0) + 1);
    return () => {
      for (const d of dirs) {
        const n = (this.inUse.get(d) ?? 1) - 1;
        if (n <= 0) this.inUse.delete(d);
        else this.inUse.set(d, n);
      }
    };
  }

  /**
   * Keep the cache under `maxBytes`: drop the least recently used steps,
   * then layer and base directories no step names (and no build holds).
   */
  prune(maxBytes: number): { removedSteps: number; removedDirs: number } {
    const steps = readdirSync(join(this.root, 'steps'))
      .filter((n) => !n.endsWith('.tmp'))
      .map((n) => {
        const f = join(this.root, 'steps', n);
        try {
          return { f, used: statSync(f).mtimeMs, rec: JSON.parse(readFileSync(f, 'utf8')) as StepRecord };
        } catch {
          return undefined;
        }
      })
      .filter((s): s is NonNullable<typeof s> => s !== undefined)
      .sort((a, b) => b.used - a.used);
    let total = 0;
    let removedSteps = 0;
    const live = new Set<string>();
    for (const s of steps) {
      total += s.rec.bytes;
      if (total > maxBytes && !(s.rec.layer && this.inUse.has(this.layerDir(s.rec.layer)))) {
        rmSync(s.f, { force: true });
        removedSteps++;
      } else if (s.rec.layer) live.add(s.rec.layer);
    }
    let removedDirs = 0;
    for (const id of readdirSync(join(this.root, 'layers'))) {
      if (live.has(id) || this.inUse.has(this.layerDir(id))) continue;
      rmSync(join(this.root, 'layers', id), { recursive: true, force: true });
      removedDirs++;
    }
    // Bases: kept while small in number; the oldest go once the steps over them are gone.
    const bases = readdirSync(join(this.root, 'bases')).map((n) => ({ n, used: lstatSync(join(this.root, 'bases', n)).mtimeMs })).sort((a, b) => b.used - a.used);
    for (const b of bases.slice(8)) {
      if (this.inUse.has(join('bases', b.n))) continue;
      rmSync(join(this.root, 'bases', b.n), { recursive: true, force: true });
      removedDirs++;
    }
    return { removedSteps, removedDirs };
  }

  /**
   * Scratch left by a daemon that died mid-build: unmount its views, then
   * remove it. Run once before the first build.
   */
  async recover(): Promise<void> {
    const tmp = join(this.root, 'tmp');
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(`${tmp}/`))
      .reverse();
    for (const m of mounts) await run('umount', ['-l', m], { allowFailure: true });
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true, mode: 0o700 });
  }
}
