import type { Accounts } from '../accounts/index.js';
import { parseImageReference, type RootfsCache } from '../rootfs/index.js';
import { HangarError } from '../shared/errors.js';
import type { AcquiredImage, ImageProvider } from '../machines/index.js';

/** Repositories every org may pull: the base-image mirror (see docs/registry.md). */
const SHARED_NAMESPACES = ['library', 'mirror'];

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
}): ImageProvider {
  return {
    async acquire(image: string, ctx: { app: string }): Promise<AcquiredImage> {
      const ref = parseImageReference(image);
      const local = ref.host === undefined || opts.localHosts().includes(ref.host);
      if (local) {
        const owner = ref.path.split('/')[0]!;
        const app = opts.accounts.findApp(ctx.app);
        const ownerApp = opts.accounts.findApp(owner);
        if (ownerApp && app && ownerApp.org_id !== app.org_id) {
          throw new HangarError(
            'FORBIDDEN',
            `image ${image} belongs to app ${owner} of another organization; apps may only run images of their own organization`,
          );
        }
        if (!ownerApp && ref.host !== undefined && !SHARED_NAMESPACES.includes(owner)) {
          throw new HangarError('NOT_FOUND', `image ${image} not found: no app "${owner}" in this Hangar's registry; push it first (see \`hangar auth docker\`)`);
        }
      }
      // An image of one of this Hangar's apps is looked up only here: never
      // fall through to Docker Hub for it (a typo must not leave the host).
      const pinned = local && ref.host === undefined && opts.accounts.findApp(ref.path.split('/')[0]!) ? `${opts.localHosts()[0]}/${image}` : image;
      const got = await opts.cache.acquire(pinned);
      const repository = ref.path;
      return {
        imagePath: got.imagePath,
        ref: {
          registry: ref.host ?? (local ? 'hangar' : ref.registry),
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
