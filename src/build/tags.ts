/**
 * Deployment tags: `deployment-YYYYMMDD-HHMMSS` in UTC. Two deploys in the
 * same second get `-2`, `-3`...: `taken` says which tags exist already.
 */
export function deploymentTag(now: Date, taken: (tag: string) => boolean): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const base = `deployment-${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}-${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
  if (!taken(base)) return base;
  for (let i = 2; ; i++) if (!taken(`${base}-${i}`)) return `${base}-${i}`;
}

const LABEL = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
export function isValidLabel(label: string): boolean {
  return LABEL.test(label);
}
