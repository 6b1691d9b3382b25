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
