import { mkdirSync, readFileSync, renameSync, writeFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { HangarError } from '../shared/errors.js';
import type { Inventory } from './types.js';

const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/**
 * Bump when a cataloger changes what it finds (new source, new skip rule):
 * cached inventories from older code are then recomputed, not served.
 */
export const CATALOG_VERSION = 2;

/**
 * Inventories cached per image manifest digest as `<dataDir>/sbom/<alg>-<hex>.json`.
 * Images are immutable by digest, so an entry only goes stale when the
 * catalogers change; CATALOG_VERSION in the file takes care of that.
 */
export class SbomStore {
  private readonly dir: string;
  private readonly inflight = new Map<string, Promise<Inventory>>();

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'sbom');
    mkdirSync(this.dir, { recursive: true });
  }

  private file(digest: string): string {
    if (!DIGEST.test(digest)) throw new HangarError('BAD_REQUEST', `"${digest}" is not an image digest (sha256:<64 hex>)`);
    return join(this.dir, digest.replace(':', '-') + '.json');
  }

  get(digest: string): Inventory | undefined {
    let text: string;
    try {
      text = readFileSync(this.file(digest), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      const entry = JSON.parse(text) as { catalog?: number; inventory?: Inventory };
      const inv = entry.inventory;
      return entry.catalog === CATALOG_VERSION && inv?.schema === 1 && Array.isArray(inv.packages) ? inv : undefined;
    } catch {
      return undefined; // a damaged cache entry is recomputed, not reported
    }
  }

  put(digest: string, inv: Inventory): void {
    const target = this.file(digest);
    const tmp = `${target}.${process.pid}.${Date.now()}.tmp`;
    writeFileSync(tmp, JSON.stringify({ catalog: CATALOG_VERSION, inventory: inv }));
    renameSync(tmp, target);
  }

  delete(digest: string): void {
    try {
      unlinkSync(this.file(digest));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  /** Cached inventory, or compute it once (concurrent callers share the work) and store it. */
  async getOrCompute(digest: string, compute: () => Promise<Inventory>): Promise<{ inventory: Inventory; cached: boolean }> {
    const hit = this.get(digest);
    if (hit) return { inventory: hit, cached: true };
    let p = this.inflight.get(digest);
    if (!p) {
      p = compute().then((inv) => {
        this.put(digest, inv);
        return inv;
      });
      this.inflight.set(digest, p);
      p.finally(() => this.inflight.delete(digest)).catch(() => {});
    }
    return { inventory: await p, cached: false };
  }
}
