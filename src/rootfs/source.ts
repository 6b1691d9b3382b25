/**
 * Where an image's manifests and blobs come from. Two kinds: Hangar's own
 * content store (files, no HTTP) and a remote registry (registry-client.ts).
 * Sources return bytes as they are; the caller verifies every digest.
 */
import { createReadStream, readFileSync, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { LocalImageStore } from '../shared/image-store.js';
import { HangarError } from '../shared/errors.js';
import { isDigest } from './reference.js';
import { MAX_MANIFEST_BYTES } from './manifest.js';

export interface FetchedManifest {
  bytes: Buffer;
  /** Content-Type from the registry, or what the store recorded. */
  mediaType: string | undefined;
}

export interface ImageSource {
  /** Human name for messages, e.g. "127.0.0.1:5000/app" or "hangar registry: app". */
  readonly name: string;
  /** reference: a tag or a digest. */
  fetchManifest(reference: string, signal?: AbortSignal): Promise<FetchedManifest>;
  /** Stream a blob (not yet verified). */
  openBlob(digest: string, size: number, signal?: AbortSignal): Promise<Readable>;
  /** Small blobs (configs) in one piece, size-bounded. */
  fetchBlob(digest: string, maxBytes: number, signal?: AbortSignal): Promise<Buffer>;
  /** A plain-data description from which a worker thread can open the given blobs itself. */
  workerSpec(digests: string[]): SourceSpec;
}

export type SourceSpec =
  | { kind: 'files'; name: string; paths: Record<string, string> }
  | { kind: 'registry'; registry: string; repo: string; credentials?: { username: string; password: string }; authHeader?: string };

/** Blobs as plain files (what a LocalStoreSource hands to a worker). */
export class FileBlobSource implements ImageSource {
  constructor(
    readonly name: string,
    private readonly paths: Record<string, string>,
  ) {}
  async fetchManifest(): Promise<FetchedManifest> {
    throw new Error('FileBlobSource serves layer blobs only');
  }
  async openBlob(digest: string): Promise<Readable> {
    const p = this.paths[digest];
    if (!p) throw new HangarError('BLOB_NOT_FOUND', `blob ${digest} is missing`, { status: 404 });
    return createReadStream(p, { highWaterMark: 1 << 20 });
  }
  async fetchBlob(digest: string): Promise<Buffer> {
    return readFileSync(this.paths[digest]!);
  }
  workerSpec(): SourceSpec {
    return { kind: 'files', name: this.name, paths: this.paths };
  }
}

export class LocalStoreSource implements ImageSource {
  readonly name: string;
  constructor(
    private readonly store: LocalImageStore,
    private readonly repo: string,
  ) {
    this.name = `Hangar's registry: ${repo}`;
  }

  async fetchManifest(reference: string): Promise<FetchedManifest> {
    let resolved = this.store.resolveManifest(this.repo, reference);
    // Children of an index are plain blobs the store may not list under the repo.
    if (!resolved && isDigest(reference) && this.store.blobPath(reference)) resolved = { digest: reference, mediaType: '' };
    if (!resolved)
      throw new HangarError('IMAGE_NOT_FOUND', `${this.repo}:${reference} is not in Hangar's registry; push it first (or check the name)`, {
        status: 404,
      });
    const bytes = this.readSmall(resolved.digest, MAX_MANIFEST_BYTES);
    return { bytes, mediaType: resolved.mediaType || undefined };
  }

  async openBlob(digest: string): Promise<Readable> {
    return createReadStream(this.path(digest), { highWaterMark: 1 << 20 });
  }

  async fetchBlob(digest: string, maxBytes: number): Promise<Buffer> {
    return this.readSmall(digest, maxBytes);
  }

  workerSpec(digests: string[]): SourceSpec {
    return { kind: 'files', name: this.name, paths: Object.fromEntries(digests.map((d) => [d, this.path(d)])) };
  }

  private path(digest: string): string {
    const p = this.store.blobPath(digest);
    if (!p)
      throw new HangarError('BLOB_NOT_FOUND', `blob ${digest} of ${this.repo} is missing from Hangar's registry; push the image again`, {
        status: 404,
      });
    return p;
  }

  private readSmall(digest: string, maxBytes: number): Buffer {
    const p = this.path(digest);
    if (statSync(p).size > maxBytes)
      throw new HangarError('BAD_IMAGE', `${this.repo}: ${digest} is larger than ${maxBytes} bytes, too large for a manifest or config`, {
        status: 422,
      });
    return readFileSync(p);
  }
}
