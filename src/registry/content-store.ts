import { mkdirSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Digest } from './digest.js';

/**
 * Blob bytes on disk, one file per digest:
 *   <root>/blobs/<algorithm>/<first two hex>/<hex>   immutable, verified
 *   <root>/uploads/<session id>                       open upload sessions
 *   <root>/uploads/<uuid>.tmp                         single-request uploads, manifests
 * A file reaches blobs/ only by rename(2) after its digest was checked and
 * its data fsync'd, so a reader never sees a partial or unverified blob.
 */
export class ContentStore {
  readonly blobsDir: string;
  readonly uploadsDir: string;

  constructor(readonly root: string) {
    this.blobsDir = join(root, 'blobs');
    this.uploadsDir = join(root, 'uploads');
    mkdirSync(this.blobsDir, { recursive: true, mode: 0o700 });
    mkdirSync(this.uploadsDir, { recursive: true, mode: 0o700 });
  }

  blobPath(digest: Pick<Digest, 'algorithm' | 'hex'>): string {
    return join(this.blobsDir, digest.algorithm, digest.hex.slice(0, 2), digest.hex);
  }

  uploadPath(id: string): string {
    return join(this.uploadsDir, id);
  }

  tempPath(): string {
    return join(this.uploadsDir, `${randomUUID()}.tmp`);
  }

  async fileExists(digest: Digest): Promise<boolean> {
    try {
      await stat(this.blobPath(digest));
      return true;
    } catch {
      return false;
    }
  }

  /** Flush a finished upload's data to disk before it may be renamed into place. */
  async syncFile(path: string): Promise<void> {
    const fh = await open(path, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Move a verified, synced file into the store and make the rename durable. */
  async install(tempPath: string, digest: Digest): Promise<void> {
    const dest = this.blobPath(digest);
    const dir = join(this.blobsDir, digest.algorithm, digest.hex.slice(0, 2));
    let created = false;
    if (!existsSync(dir)) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      created = true;
    }
    await rename(tempPath, dest);
    await syncDir(dir);
    if (created) await syncDir(join(this.blobsDir, digest.algorithm));
  }

  async write(tempPath: string, data: Buffer): Promise<void> {
    const fh = await open(tempPath, 'w', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  async remove(path: string): Promise<void> {
    await unlink(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }

  /** Start-up: single-request temp files belong to requests that died with the previous process. */
  removeStaleTemps(): void {
    for (const f of readdirSync(this.uploadsDir)) {
      if (f.endsWith('.tmp')) rmSync(join(this.uploadsDir, f), { force: true });
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
