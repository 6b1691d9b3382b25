/**
 * The boundary between Hangar's registry (which owns the content store) and
 * the components that read images without an HTTP round trip (rootfs, sbom).
 * The registry implements it; readers depend only on this interface.
 */
export interface LocalImageStore {
  /**
   * Resolve `reference` (a tag or a `sha256:`/`sha512:` digest) in repository
   * `repo` (e.g. `myapp` or `myapp/worker`) to a manifest or index digest.
   * Returns undefined when the repository or reference does not exist.
   */
  resolveManifest(repo: string, reference: string): { digest: string; mediaType: string } | undefined;
  /**
   * Absolute path of the verified, immutable file holding blob `digest`
   * (manifests are blobs too), or undefined if the store does not have it.
   */
  blobPath(digest: string): string | undefined;
}

/** The app owning a repository, as the registry keys it. */
export interface AppRef {
  readonly id: string;
}

/**
 * Writing images into Hangar's registry in-process: what the daemon's own
 * builder publishes through, with the registry's rules (one copy per
 * digest, blobs linked to the repository, a manifest only over blobs the
 * repository has) but no HTTP round trips and no token. The caller is the
 * daemon itself: it has already decided that `app` may write `repo`.
 */
export interface LocalImageWriter {
  /** Link blob `digest`, which the store already holds, into `repo`. False when the store does not have it. */
  linkBlob(repo: string, app: AppRef, digest: string): Promise<boolean>;
  /** A path on the store's own filesystem to write a new blob to, before `addBlob`. */
  blobTempPath(): string;
  /**
   * Move the finished file at `tempPath` (from `blobTempPath`) into the store
   * as blob `digest` of `size` bytes, linked into `repo`. The writer computed
   * the digest from the bytes it wrote.
   */
  addBlob(repo: string, app: AppRef, tempPath: string, digest: string, size: number): Promise<void>;
  /** Store an OCI image manifest in `repo` under `tag`; returns its digest. */
  putManifest(repo: string, app: AppRef, tag: string, body: Buffer, mediaType: string): Promise<string>;
}
