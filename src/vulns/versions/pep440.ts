/**
 * PEP 440 ordering, following the `packaging` library's comparison key:
 * epoch, release (trailing zeros ignored), pre (a < b < rc; a dev-only
 * release sorts before its pre-releases), post, dev, local segments.
 */
const RE =
  /^v?(?:(\d+)!)?(\d+(?:\.\d+)*)(?:[-_.]?(alpha|a|beta|b|preview|pre|c|rc)[-_.]?(\d+)?)?(?:-(\d+)|[-_.]?(post|rev|r)[-_.]?(\d+)?)?(?:[-_.]?(dev)[-_.]?(\d+)?)?(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?$/i;

type Key = [number, number[], [number, number], number, number, Array<[number, string]> | null];

const INF = Number.POSITIVE_INFINITY;
const NINF = Number.NEGATIVE_INFINITY;

export function pep440Key(v: string): Key | undefined {
  const m = RE.exec(v.trim());
  if (!m) return undefined;
  const epoch = m[1] ? Number(m[1]) : 0;
  const release = m[2]!.split('.').map(Number);
  while (release.length > 1 && release[release.length - 1] === 0) release.pop();
  const preL = m[3]?.toLowerCase();
  const hasPost = m[5] !== undefined || m[6] !== undefined;
  const hasDev = m[8] !== undefined;
  let pre: [number, number];
  if (preL) {
    const rank = preL === 'a' || preL === 'alpha' ? 0 : preL === 'b' || preL === 'beta' ? 1 : 2;
    pre = [rank, Number(m[4] ?? 0)];
  } else if (!hasPost && hasDev) pre = [NINF, 0];
  else pre = [INF, 0];
  const post = hasPost ? Number(m[5] ?? m[7] ?? 0) : NINF;
  const dev = hasDev ? Number(m[9] ?? 0) : INF;
  const local = m[10]
    ? m[10]
        .toLowerCase()
        .split(/[-_.]/)
        .map((s): [number, string] => (/^\d+$/.test(s) ? [Number(s), ''] : [NINF, s]))
    : null;
  return [epoch, release, pre, post, dev, local];
}

export function isValidPep440(v: string): boolean {
  return pep440Key(v) !== undefined;
}

const c = (a: number, b: number) => (a < b ? -1 : a > b ? 1 : 0);
const s = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function comparePep440(a: string, b: string): number {
  const x = pep440Key(a);
  const y = pep440Key(b);
  if (!x) throw new Error(`invalid PEP 440 version "${a}"`);
  if (!y) throw new Error(`invalid PEP 440 version "${b}"`);
  let r = c(x[0], y[0]);
  if (r) return r;
  for (let i = 0; i < Math.max(x[1].length, y[1].length); i++) {
    if (x[1][i] === undefined) return -1;
    if (y[1][i] === undefined) return 1;
    r = c(x[1][i]!, y[1][i]!);
    if (r) return r;
  }
  r = c(x[2][0], y[2][0]) || c(x[2][1], y[2][1]) || c(x[3], y[3]) || c(x[4], y[4]);
  if (r) return r;
  const lx = x[5];
  const ly = y[5];
  if (!lx || !ly) return lx === ly ? 0 : lx ? 1 : -1;
  for (let i = 0; i < Math.max(lx.length, ly.length); i++) {
    if (lx[i] === undefined) return -1;
    if (ly[i] === undefined) return 1;
    r = c(lx[i]![0], ly[i]![0]) || s(lx[i]![1], ly[i]![1]);
    if (r) return r;
  }
  return 0;
}
