import { readFileSync } from 'node:fs';
import { HangarError } from '../shared/errors.js';
import type { LocalImageStore } from '../shared/image-store.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface ResolvedImage {
  /** Digest of the platform-specific image manifest (the SBOM cache key). */
  digest: string;
  /** Blob paths of the layers, bottom first. */
  layers: string[];
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

/** Resolve repo:reference in the local store to one image manifest and its layer blobs. */
export function resolveImage(store: LocalImageStore, repo: string, reference: string, platform: Platform = { os: 'linux', architecture: 'amd64' }): ResolvedImage {
  const top = store.resolveManifest(repo, reference);
  if (!top) throw new HangarError('NOT_FOUND', `image ${repo}:${reference} is not in the registry; push or deploy it first`);
  let digest = top.digest;
  let manifest = readJson(store, digest);
  const mediaType = (manifest.mediaType as string | undefined) ?? top.mediaType;
  if (INDEX_TYPES.has(mediaType) || Array.isArray(manifest.manifests)) {
    const list = (manifest.manifests ?? []) as Array<{ digest: string; platform?: Platform }>;
    const pick =
      list.find((m) => m.platform?.os === platform.os && m.platform?.architecture === platform.architecture && (!platform.variant || m.platform?.variant === platform.variant)) ??
      (list.length === 1 ? list[0] : undefined);
    if (!pick) {
      const have = list.map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}` : '?')).join(', ');
      throw new HangarError('NOT_FOUND', `image ${repo}:${reference} has no ${platform.os}/${platform.architecture} variant (it has: ${have || 'none'})`);
    }
    digest = pick.digest;
    manifest = readJson(store, digest);
  }
  const layers = manifest.layers as Array<{ digest: string; mediaType?: string }> | undefined;
  if (!Array.isArray(layers)) throw new HangarError('SBOM_BAD_MANIFEST', `manifest ${digest} of ${repo}:${reference} lists no layers; it is not an image manifest`);
  return {
    digest,
    layers: layers.map((l) => {
      const p = store.blobPath(l.digest);
      if (!p) throw new HangarError('NOT_FOUND', `layer ${l.digest} of ${repo}:${reference} is missing from the registry store; re-push the image`);
      return p;
    }),
  };
}

function readJson(store: LocalImageStore, digest: string): Record<string, unknown> {
  const p = store.blobPath(digest);
  if (!p) throw new HangarError('NOT_FOUND', `manifest ${digest} is missing from the registry store; re-push the image`);
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new HangarError('SBOM_BAD_MANIFEST', `manifest ${digest} is not valid JSON; re-push the image`, { cause: e });
  }
}
