/**
 * Repositories under `docker.io/` are Hangar's mirror of Docker Hub base
 * images (src/build/mirror.ts). A dot never appears in an app name, so no
 * user app can own this prefix. Every authenticated principal may pull from
 * it; only the admin may push.
 *
 * A module of its own so that the CLI can name the mirror without loading
 * the registry.
 */
export const MIRROR_PREFIX = 'docker.io/';
export const isMirrorRepo = (repo: string): boolean => repo.startsWith(MIRROR_PREFIX);
/** The prefix as a namespace, for `<registry>/docker.io/library/debian` style references. */
export const MIRROR_NAMESPACE = MIRROR_PREFIX.slice(0, -1);
