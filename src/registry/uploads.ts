import { createHash, randomUUID, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, readdir, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ContentStore } from './content-store.js';
import { hashFile, type DigestAlgorithm } from './digest.js';
import { regErr } from './errors.js';
import type { Metadata } from './metadata.js';

interface LiveState {
  /** Running sha256 of the bytes in the session file (the common final digest). */
  hash: Hash;
  size: number;
  busy: boolean;
}

export interface Session {
  id: string;
  repo: string;
  size: number;
}

/**
 * Upload sessions: a row in SQLite plus a file in uploads/, so they survive a
 * restart. The sha256 of the bytes so far is kept in memory and updated in
 * the same pass as the write; after a restart it is rebuilt from the file.
 */
export class Uploads {
  private readonly live = new Map<string, LiveState>();

  constructor(
    private readonly meta: Metadata,
    private readonly store: ContentStore,
  ) {}

  async create(repo: string): Promise<Session> {
    const id = randomUUID();
    const fh = await open(this.store.uploadPath(id), 'wx', 0o600);
    await fh.close();
    this.meta.createUpload(id, repo);
    this.live.set(id, { hash: createHash('sha256'), size: 0, busy: false });
    return { id, repo, size: 0 };
  }

  async get(id: string, repo: string): Promise<Session> {
    const row = /^[0-9a-f-]{36}$/.test(id) ? this.meta.upload(id) : undefined;
    if (!row || row.repo !== repo) throw unknownUpload(id);
    const st = this.live.get(id);
    if (st) return { id, repo, size: st.size };
    try {
      return { id, repo, size: (await stat(this.store.uploadPath(id))).size };
    } catch {
      this.meta.deleteUpload(id);
      throw unknownUpload(id);
    }
  }

  private async state(id: string): Promise<LiveState> {
    let st = this.live.get(id);
    if (!st) {
      const path = this.store.uploadPath(id);
      const size = (await stat(path)).size;
      st = this.live.get(id) ?? { hash: await hashFile(path, 'sha256', size), size, busy: false };
      this.live.set(id, st);
    }
    return st;
  }

  /**
   * Append a request body at the session's current end. `range` is the
   * Content-Range the client sent (must start where we are: else 416 with
   * the Range we have). A body that breaks off is rolled back.
   */
  async append(session: Session, body: Readable, range?: { start: number; end: number }): Promise<number> {
    const st = await this.state(session.id);
    const rangeHeader = { range: `0-${Math.max(0, st.size - 1)}`, location: uploadLocation(session), 'docker-upload-uuid': session.id };
    if (st.busy) throw regErr('BLOB_UPLOAD_INVALID', 'another request is writing to this upload session; wait for it, then check GET on the session', { status: 416, headers: rangeHeader });
    if (range && range.start !== st.size) {
      throw regErr('BLOB_UPLOAD_INVALID', `chunk starts at byte ${range.start} but the upload has ${st.size} bytes: send the chunk that starts at ${st.size}`, {
        status: 416,
        headers: rangeHeader,
        detail: { have: st.size, start: range.start },
      });
    }
    st.busy = true;
    const start = st.size;
    const checkpoint = st.hash.copy();
    let n = 0;
    try {
      const hash = st.hash;
      await pipeline(
        body,
        new Transform({
          transform(chunk: Buffer, _enc, cb) {
            hash.update(chunk);
            n += chunk.length;
            cb(null, chunk);
          },
        }),
        createWriteStream(this.store.uploadPath(session.id), { flags: 'r+', start, highWaterMark: 1 << 20 }),
      );
      if (range && range.end - range.start + 1 !== n) {
        throw regErr('BLOB_UPLOAD_INVALID', `Content-Range announced ${range.end - range.start + 1} bytes but the body had ${n}; resend the chunk`, {
          status: 416,
          headers: rangeHeader,
        });
      }
      st.size = start + n;
      this.meta.touchUpload(session.id);
      session.size = st.size;
      return st.size;
    } catch (e) {
      st.hash = checkpoint;
      await truncate(this.store.uploadPath(session.id), start).catch(() => undefined);
      throw e;
    } finally {
      st.busy = false;
    }
  }

  /** The digest of everything uploaded so far, in the algorithm the client named. */
  async digestHex(session: Session, algorithm: DigestAlgorithm): Promise<string> {
    const st = await this.state(session.id);
    if (algorithm === 'sha256') return st.hash.copy().digest('hex');
    return (await hashFile(this.store.uploadPath(session.id), algorithm, st.size)).digest('hex');
  }

  /** Forget the session; its file is either already renamed into the store or removed here. */
  async drop(id: string, removeFile = true): Promise<void> {
    this.live.delete(id);
    this.meta.deleteUpload(id);
    if (removeFile) await this.store.remove(this.store.uploadPath(id));
  }

  /** Expire sessions idle for longer than maxAgeMs, and files without a session. */
  async sweep(maxAgeMs: number): Promise<number> {
    let n = 0;
    for (const id of this.meta.uploadsOlderThan(Date.now() - maxAgeMs)) {
      if (this.live.get(id)?.busy) continue;
      await this.drop(id);
      n++;
    }
    // Session files whose row is gone (a crash between creating the file and the row).
    const ids = this.meta.uploadIds();
    const cutoff = Date.now() - maxAgeMs;
    for (const f of await readdir(this.store.uploadsDir)) {
      if (f.endsWith('.tmp') || ids.has(f)) continue;
      const st = await stat(join(this.store.uploadsDir, f)).catch(() => undefined);
      if (st && st.mtimeMs < cutoff) {
        await this.store.remove(join(this.store.uploadsDir, f));
        n++;
      }
    }
    return n;
  }
}

export function uploadLocation(s: { id: string; repo: string }): string {
  return `/v2/${s.repo}/blobs/uploads/${s.id}`;
}

function unknownUpload(id: string) {
  return regErr('BLOB_UPLOAD_UNKNOWN', `upload session ${id.slice(0, 64)} is not known (finished, cancelled or expired): start a new upload with POST /v2/<name>/blobs/uploads/`);
}
