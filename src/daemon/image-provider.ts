import type { Accounts } from '../accounts/index.js';
import { parseImageReference, type RootfsCache } from '../rootfs/index.js';
import { HangarError } from '../shared/errors.js';
import { MIRROR_PREFIX } from '../registry/index.js';
import type { AcquiredImage, ImageProvider } from '../machines/index.js';
import { pullThroughMirror, type DeployImageStore } from '../deploy/index.js';

/** The Docker Hub mirror's repositories (docker.io/...) belong to a system app and every org may run them, as the registry lets every org pull them. */
const HUB_MIRROR = MIRROR_PREFIX.slice(0, -1);

/**
 * Machines name images the way users write them. An image in Hangar's own
 * registry may only be run by apps of the org that owns its repository
 * (two apps of one org can share images; never across orgs). Remote images
 * (another registry) are fetched by the rootfs cache as they are.
 */
export function createImageProvider(opts: {
  cache: RootfsCache;
  accounts: Accounts;
  /** host:port forms under which Hangar's registry is known. */
  localHosts: () => string[];
  /** The registry; with its pull-through, Docker Hub names are fetched through the mirror instead of from Docker Hub. */
  images?: DeployImageStore;
}): ImageProvider {
  return {
    async acquire(image: string, ctx: { app: string }): Promise<AcquiredImage> {
      const ref = parseImageReference(image);
      const local = ref.host === undefined || opts.localHosts().includes(ref.host);
      if (local) {
        const owner = ref.path.split('/')[0]!;
        const app = opts.accounts.findApp(ctx.app);
        const ownerApp = opts.accounts.findApp(owner);
        if (ownerApp && app && ownerApp.org_id !== app.org_id && owner !== HUB_MIRROR) {
          throw new HangarError(
            'FORBIDDEN',
            `image ${image} belongs to app ${owner} of another organization; apps may only run images of their own organization`,
          );
        }
        if (!ownerApp && ref.host !== undefined) {
          throw new HangarError('NOT_FOUND', `image ${image} not found: no app "${owner}" in this Hangar's registry; push it first (see \`hangar auth docker\`)`);
        }
      }
      // An image of one of this Hangar's apps is looked up only here: never
      // fall through to Docker Hub for it (a typo must not leave the host).
      const appImage = local && ref.host === undefined && !!opts.accounts.findApp(ref.path.split('/')[0]!);
      let pinned = appImage ? `${opts.localHosts()[0]}/${image}` : image;
      let repository = ref.path;
      let registry = ref.host ?? (local ? 'hangar' : ref.registry);
      // A Docker Hub name (`nginx:1.25`, `docker.io/library/nginx`) comes through the registry's mirror when it pulls
      // through, never straight from Docker Hub; pinned by digest like an app image.
      const hub = !appImage && ref.registry === 'docker.io' && (ref.host === undefined || !local);
      if (hub && opts.images?.pullThrough) {
        const repo = `${HUB_MIRROR}/${ref.repository}`;
        await pullThroughMirror({ images: opts.images, accounts: opts.accounts, repo, reference: ref.reference, shown: image });
        const hit = opts.images.resolveManifest(repo, ref.reference);
        if (hit) {
          pinned = `${opts.localHosts()[0]}/${repo}${ref.tag ? `:${ref.tag}` : ''}@${hit.digest}`;
          repository = repo;
          registry = 'hangar';
        }
      }
      const got = await opts.cache.acquire(pinned);
      return {
        imagePath: got.imagePath,
        ref: {
          registry,
          repository,
          tag: ref.tag ?? (ref.digest ? '' : 'latest'),
          digest: got.digest,
          labels: got.config.labels,
        },
        config: {
          entrypoint: got.config.entrypoint,
          cmd: got.config.cmd,
          env: got.config.env,
          workingDir: got.config.workingDir,
          user: got.config.user,
          stopSignal: got.config.stopSignal ?? undefined,
          exposedPorts: got.config.exposedPorts,
        },
        release: () => got.lease.release(),
      };
    },
  };
}
