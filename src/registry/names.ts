import { regErr } from './errors.js';

// The OCI Distribution Spec name grammar; `..`, leading dots and upper case
// all fail it, so no repository name can escape a path or alias another.
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

export interface RepoName {
  name: string;
  /** The first path component: the Hangar app that owns the repository. */
  app: string;
}

export function parseRepoName(name: string): RepoName {
  if (name.length > 255 || !NAME_RE.test(name)) {
    throw regErr(
      'NAME_INVALID',
      `invalid repository name ${JSON.stringify(name.slice(0, 300))}: use <app> or <app>/<name> with lowercase letters, digits and single separators (. _ -)`,
      { detail: { name: name.slice(0, 300) } },
    );
  }
  return { name, app: name.split('/')[0]! };
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}
