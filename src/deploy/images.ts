import { readFileSync } from 'node:fs';
import type { Accounts, App } from '../accounts/index.js';
import type { LocalImageStore } from '../shared/image-store.js';
import { HangarError, isHangarError } from '../shared/errors.js';
import { parseDigest, type Digest } from '../registry/digest.js';
import { MIRROR_PREFIX as MIRROR } from '../registry/index.js';

export interface ResolvedDeployImage {
  /** What users see: host:port/repo:tag (or @digest). */
  image: string;
  /** What machines run: host:port/repo[:tag]@digest. */
  ref: string;
  digest: string | null;
  repository: string | null;
}

/** The registry's Docker Hub pull-through (src/registry/pull-through.ts), as image resolution uses it. */
export interface MirrorPullThrough {
  ensureManifest(repo: string, app: App, ref: string): Promise<void>;
  ensureBlob(repo: string, app: App, digest: Digest): Promise<boolean>;
}

/** The registry's store, with its pull-through when the daemon runs with --mirror-upstream. */
export type DeployImageStore = LocalImageStore & { readonly pullThrough?: MirrorPullThrough | undefined };

/**
 * Fetch `reference` of mirror repository `repo` (docker.io/...) through the
 * registry's pull-through, with its linux/amd64 image's config and layers:
 * the rootfs cache reads the store directly, so the whole image must be
 * there before a machine boots (the registry's own prefetch runs in the
 * background). Returns false when pull-through is off; throws
 * IMAGE_NOT_FOUND when the upstream does not have it.
 */
export async function pullThroughMirror(o: { images: DeployImageStore; accounts: Accounts; repo: string; reference: string; shown: string }): Promise<boolean> {
  const pt = o.images.pullThrough;
  if (!pt) return false;
  const owner = o.accounts.findApp(MIRROR.slice(0, -1));
  if (!owner) return false;
  try {
    await pt.ensureManifest(o.repo, owner, o.reference);
    const top = o.images.resolveManifest(o.repo, o.reference);
    if (!top) return true;
    let json = readManifest(o.images, top.digest);
    if (json.manifests) {
      const child = json.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64');
      if (!child) return true; // the rootfs cache names the missing platform
      await pt.ensureManifest(o.repo, owner, child.digest);
      json = readManifest(o.images, child.digest);
    }
    const blobs = [json.config?.digest, ...(json.layers ?? []).filter((l) => !l.urls?.length).map((l) => l.digest)].filter((d): d is string => !!d);
    for (const d of blobs) await pt.ensureBlob(o.repo, owner, parseDigest(d));
    return true;
  } catch (e) {
    if (isHangarError(e) && e.code === 'MANIFEST_UNKNOWN') {
      throw new HangarError(
        'IMAGE_NOT_FOUND',
        `image ${o.shown} is neither in Hangar's registry nor on the Docker Hub mirror's upstream; check the image name and tag (${e.message})`,
        { status: 404 },
      );
    }
    if (isHangarError(e)) throw new HangarError(e.code, `image ${o.shown} could not be pulled through the Docker Hub mirror: ${e.message}`, { status: e.status });
    throw e;
  }
}

interface ManifestJson {
  config?: { digest: string };
  layers?: Array<{ digest: string; urls?: string[] }>;
  manifests?: Array<{ digest: string; platform?: { os?: string; architecture?: string } }>;
}

function readManifest(images: LocalImageStore, digest: string): ManifestJson {
  const p = images.blobPath(digest);
  return p ? (JSON.parse(readFileSync(p, 'utf8')) as ManifestJson) : {};
}

/**
 * Resolve the image a deploy names, and check who may run it: an image of
 * an app in the same organization, a mirrored base image, or (unchecked) an
 * image in some other registry that the rootfs cache pulls itself.
 */
export async function resolveDeployImage(o: {
  ref: string;
  app: App;
  accounts: Accounts;
  images: DeployImageStore;
  registryHosts: string[];
}): Promise<ResolvedDeployImage> {
  const { ref, app } = o;
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let host: string | undefined;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      host = first;
      rest = rest.slice(slash + 1);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  if (!rest) throw new HangarError('BAD_IMAGE_REFERENCE', `invalid image reference "${ref}": write it as [host:port/]name[:tag][@sha256:digest]`, { status: 400 });
  const ours = host === undefined || o.registryHosts.includes(host);
  const localHost = o.registryHosts[0]!;
  const reference = digest ?? tag ?? 'latest';
  const candidates: string[] = [];
  const hubRepo = MIRROR + (rest.includes('/') ? rest : `library/${rest}`);
  if (host === 'docker.io' || host === 'index.docker.io') candidates.push(hubRepo);
  else if (ours) {
    candidates.push(rest);
    if (host === undefined) candidates.push(hubRepo);
  }
  // An app's repository wins over a Docker Hub name of the same spelling: `myapp:v1` never goes upstream.
  const hub = host === undefined && o.accounts.findApp(rest.split('/')[0]!) ? undefined : candidates.find((r) => r.startsWith(MIRROR));
  for (const repo of candidates) {
    // Through the pull-through even on a hit: it re-checks pulled tags past their TTL and completes a half-prefetched image.
    if (repo === hub) await pullThroughMirror({ images: o.images, accounts: o.accounts, repo, reference, shown: ref });
    const hit = o.images.resolveManifest(repo, reference);
    if (!hit) continue;
    if (!repo.startsWith(MIRROR)) {
      const owner = o.accounts.findApp(repo.split('/')[0]!);
      if (owner && owner.org_id !== app.org_id) {
        throw new HangarError(
          'IMAGE_FORBIDDEN',
          `image ${ref} belongs to an app of another organization; an app may only run images of its own organization's apps. Build it for ${app.name} (hangar deploy) or push it to ${localHost}/${app.name}`,
          { status: 403 },
        );
      }
    }
    const shown = `${localHost}/${repo}${tag ? `:${tag}` : digest ? '' : ':latest'}`;
    return { image: digest ? `${shown}@${digest}` : shown, ref: `${shown}@${hit.digest}`, digest: hit.digest, repository: repo };
  }
  if (ours || (hub && o.images.pullThrough)) {
    throw new HangarError(
      'IMAGE_NOT_FOUND',
      `image ${ref} is not in Hangar's registry; build and push it first with \`hangar deploy --build-only --push\`, or check the tag with \`hangar releases --image\``,
      { status: 404 },
    );
  }
  return { image: ref, ref, digest: digest ?? null, repository: null };
}
