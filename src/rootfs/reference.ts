import { HangarError } from '../shared/errors.js';

/**
 * An image reference split into its parts, with Docker's normalisation:
 * `debian` → docker.io/library/debian:latest. `host` is what the user wrote
 * (undefined when no registry was named): such references are looked up in
 * Hangar's own registry first (see RootfsCache), then on Docker Hub.
 */
export interface ImageReference {
  /** Registry host[:port] as written, or undefined when none was given. */
  host: string | undefined;
  /** Registry to use when the reference is remote ('docker.io' by default). */
  registry: string;
  /** Repository path as written (no host), e.g. `app`, `library/debian`. */
  path: string;
  /** Repository on `registry` (Docker Hub single names get `library/`). */
  repository: string;
  tag: string | undefined;
  digest: string | undefined;
  /** Tag or digest to ask for: the digest wins when both are given. */
  reference: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

function bad(ref: string, why: string): HangarError {
  return new HangarError(
    'BAD_IMAGE_REFERENCE',
    `invalid image reference ${JSON.stringify(ref)}: ${why}; write it as name[:tag], host[:port]/name[:tag] or name@sha256:<digest>`,
    { status: 400 },
  );
}

export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

export function parseImageReference(ref: string): ImageReference {
  if (typeof ref !== 'string' || ref.length === 0) throw bad(String(ref), 'it is empty');
  if (ref.length > 1024) throw bad(ref.slice(0, 40) + '…', 'it is longer than 1024 characters');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(ref, `${JSON.stringify(digest)} is not a sha256:/sha512: digest in lowercase hex`);
  }
  let host: string | undefined;
  const slash = rest.indexOf('/');
  if (slash !== -1) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      if (!HOST.test(first)) throw bad(ref, `${JSON.stringify(first)} is not a valid registry host`);
      host = first;
      rest = rest.slice(slash + 1);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon !== -1) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(ref, `${JSON.stringify(tag)} is not a valid tag`);
  }
  const path = rest;
  if (!path) throw bad(ref, 'it names no repository');
  for (const c of path.split('/')) {
    if (!COMPONENT.test(c))
      throw bad(ref, `${JSON.stringify(c)} is not a valid repository name component (lowercase letters, digits, '.', '_', '-')`);
  }
  if (path.length > 255) throw bad(ref, 'the repository name is longer than 255 characters');
  if (!tag && !digest) tag = 'latest';
  const registry = host === undefined || host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'docker.io' : host;
  const repository = registry === 'docker.io' && !path.includes('/') ? `library/${path}` : path;
  return { host, registry, path, repository, tag, digest, reference: digest ?? tag! };
}

/** Canonical string form, e.g. docker.io/library/debian:latest. */
export function formatReference(r: ImageReference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}
