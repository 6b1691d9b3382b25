import { badRequest } from '../shared/errors.js';

/**
 * App and org names follow Fly's rules: lowercase letters, digits and dashes,
 * starting with a letter. They become DNS labels (<app>.<domain>) and registry
 * repository names, so the rule is strict on purpose.
 */
const NAME = /^[a-z][a-z0-9-]{0,61}[a-z0-9]$|^[a-z]$/;

export function checkName(kind: 'app' | 'organization', name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name) || name.includes('--')) {
    throw badRequest(
      `invalid ${kind} name ${JSON.stringify(name)}: use 1-63 lowercase letters, digits and single dashes, starting with a letter`,
    );
  }
  return name;
}
