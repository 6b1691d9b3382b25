import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../shared/process.js';
import type { KeptTreeState } from './convert.js';

const PREFIX = 'hangar-rootfs-kept-';

/**
 * Whether `dir` is a real directory of ours that nobody else can write: the
 * scratch filesystem is usually /dev/shm, where any local user could have
 * made a directory of the same (predictable) name and filled it with a tree
 * for us to put into an image.
 */
export function ownedPrivateDir(dir: string): boolean {
  try {
    const st = lstatSync(dir);
    return st.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

/** Where a build keeps its tree (convert.ts keepTree), and the owner file that marks whose it is. */
export interface KeepPlan {
  afterLayer: number;
  dir: string;
  owner: { file: string; dir: string };
  /** A tree whose layers expand to more than this is not kept. */
  maxBytes: number;
}

export interface KeptTreesLimits {
  /** Trees kept per scratch filesystem (0: none). */
  max: number;
  /** Keep after the last layer at least this big (compressed): bases and dependency installs, not the code on top. */
  minLayerBytes: number;
  /** Largest tree kept (expanded layer bytes): on tmpfs a kept tree is memory. */
  maxTreeBytes: number;
  /** A tree no build has cloned for this long is dropped. */
  idleMs: number;
}

/**
 * Unpacked trees kept after an image's lower layers (convert.ts keepTree),
 * so that the next image starting with the same layers (a redeploy, which
 * changes only the layers on top) is a hard-link clone plus its new layers
 * instead of a full unpack. Trees live next to the scratch trees they are
 * cloned into (hard links cannot cross filesystems): one directory per
 * scratch filesystem and cache, `<scratch>/hangar-rootfs-kept-<id>/<key>/`
 * holding `tree/` and `state.json`, where key names the layer chain.
 */
export class KeptTrees {
  private readonly id: string;
  /** Trees being cloned right now: pruning leaves them alone. */
  private readonly cloning = new Set<string>();

  constructor(
    /** The owning cache's directory (its data dir's rootfs/): names the trees, and an orphan is one whose owner is gone. */
    private readonly owner: string,
    private readonly limits: KeptTreesLimits,
  ) {
    this.id = createHash('sha256').update(owner).digest('hex').slice(0, 16);
  }

  private base(scratch: string): string {
    return join(scratch, `${PREFIX}${this.id}`);
  }

  /** keys[i] names the chain of layers 0..i. */
  private static keys(layers: ReadonlyArray<{ digest: string }>): string[] {
    const h = createHash('sha256');
    return layers.map((l) => h.update(`${l.digest}\n`).copy().digest('hex').slice(0, 32));
  }

  /**
   * Clone the kept tree holding most of `layers` into `tree` (which must not
   * exist). Returns its state, or undefined when none fits (start empty).
   */
  async cloneInto(scratch: string, layers: ReadonlyArray<{ digest: string }>, tree: string): Promise<KeptTreeState | undefined> {
    if (this.limits.max <= 0 || !ownedPrivateDir(this.base(scratch))) return undefined;
    const keys = KeptTrees.keys(layers);
    for (let i = layers.length - 1; i >= 0; i--) {
      const dir = join(this.base(scratch), keys[i]!);
      let state: KeptTreeState;
      try {
        state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as KeptTreeState;
      } catch {
        continue;
      }
      if (state.layers !== i + 1) continue;
      this.cloning.add(dir);
      try {
        const r = await run('cp', ['-al', '--', join(dir, 'tree'), tree], { allowFailure: true });
        if (r.code !== 0) {
          rmSync(tree, { recursive: true, force: true });
          continue;
        }
        const now = new Date();
        utimesSync(join(dir, 'state.json'), now, now);
        return state;
      } finally {
        this.cloning.delete(dir);
      }
    }
    return undefined;
  }

  /**
   * Where this build should keep its tree: after the last layer of at least
   * minLayerBytes, when that layer is applied in this build (index ≥ start)
   * and no tree holds that chain yet.
   */
  plan(scratch: string, layers: ReadonlyArray<{ digest: string; size: number }>, start: number): KeepPlan | undefined {
    if (this.limits.max <= 0) return undefined;
    let m = -1;
    layers.forEach((l, i) => {
      if (l.size >= this.limits.minLayerBytes) m = i;
    });
    if (m < start) return undefined;
    const base = this.base(scratch);
    const dir = join(base, KeptTrees.keys(layers)[m]!);
    if (existsSync(dir)) return undefined;
    return { afterLayer: m, dir, owner: { file: join(base, 'owner'), dir: this.owner }, maxBytes: this.limits.maxTreeBytes };
  }

  /** This scratch filesystem's trees, most recently used first (the time a build last cloned each). */
  private byUse(base: string): Array<{ dir: string; usedMs: number }> {
    let names: string[];
    try {
      names = readdirSync(base).filter((n) => /^[0-9a-f]{32}$/.test(n));
    } catch {
      return [];
    }
    const used = (n: string) => {
      try {
        return statSync(join(base, n, 'state.json')).mtimeMs;
      } catch {
        return 0;
      }
    };
    return names.map((n) => ({ dir: join(base, n), usedMs: used(n) })).sort((a, b) => b.usedMs - a.usedMs);
  }

  private remove(dir: string): void {
    if (!this.cloning.has(dir)) rmSync(dir, { recursive: true, force: true });
  }

  /** Keep at most `max` trees on this scratch filesystem: the least recently used go (never one being cloned). */
  prune(scratch: string): void {
    for (const t of this.byUse(this.base(scratch)).slice(this.limits.max)) this.remove(t.dir);
  }

  /**
   * Drop the trees no build has used for idleMs: redeploys come in bursts,
   * and between them a tree on tmpfs would hold memory for nothing.
   */
  expire(scratches: string[], now = Date.now()): void {
    for (const scratch of scratches) {
      for (const t of this.byUse(this.base(scratch))) if (now - t.usedMs >= this.limits.idleMs) this.remove(t.dir);
    }
  }

  /** Remove this cache's trees (the daemon stops), and any whose owning data dir no longer exists. */
  removeAll(scratches: string[]): void {
    for (const scratch of scratches) {
      rmSync(this.base(scratch), { recursive: true, force: true });
      KeptTrees.removeOrphans(scratch);
    }
  }

  /** Trees of caches whose data dir is gone (a test's temp dir, a daemon killed before it could clean up). */
  static removeOrphans(scratch: string): void {
    let names: string[];
    try {
      names = readdirSync(scratch).filter((n) => n.startsWith(PREFIX));
    } catch {
      return;
    }
    for (const n of names) {
      let owner: string | undefined;
      try {
        owner = readFileSync(join(scratch, n, 'owner'), 'utf8');
      } catch {
        // no owner file yet: being created right now, or empty; leave it
      }
      if (owner !== undefined && !existsSync(owner) && ownedPrivateDir(join(scratch, n))) rmSync(join(scratch, n), { recursive: true, force: true });
    }
  }
}
