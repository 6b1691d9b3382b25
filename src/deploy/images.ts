import type { Accounts, App } from '../accounts/index.js';
import type { LocalImageStore } from '../shared/image-store.js';
import { HangarError } from '../shared/errors.js';

export interface ResolvedDeployImage {
  /** What users see: host:port/repo:tag (or @digest). */
  image: string;
  /** What machines run: host:port/repo[:tag]@digest. */
  ref: string;
  digest: string | null;
  repository: string | null;
}

const MIRROR = 'docker.io/';

/**
 * Resolve the image a deploy names, and check who may run it: an image of
 * an app in the same organization, a mirrored base image, or (unchecked) an
 * image in some other registry that the rootfs cache pulls itself.
 */
export function resolveDeployImage(o: { ref: string; app: App; accounts: Accounts; images: LocalImageStore; registryHosts: string[] }): ResolvedDeployImage {
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
  if (host === 'docker.io' || host === 'index.docker.io') candidates.push(MIRROR + (rest.includes('/') ? rest : `library/${rest}`));
  else if (ours) {
    candidates.push(rest);
    if (host === undefined) candidates.push(MIRROR + (rest.includes('/') ? rest : `library/${rest}`));
  }
  for (const repo of candidates) {
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
  if (ours) {
    throw new HangarError(
      'IMAGE_NOT_FOUND',
      `image ${ref} is not in Hangar's registry; build and push it first with \`hangar deploy --build-only --push\`, or check the tag with \`hangar releases --image\``,
      { status: 404 },
    );
  }
  return { image: ref, ref, digest: digest ?? null, repository: null };
}
