/** rpm ordering: epoch, then rpmvercmp on version and release (with `~` and `^`, as rpm 4.15+). */
export function compareRpm(a: string, b: string): number {
  const x = parseEvr(a);
  const y = parseEvr(b);
  if (x.epoch !== y.epoch) return x.epoch < y.epoch ? -1 : 1;
  return rpmvercmp(x.version, y.version) || rpmvercmp(x.release, y.release);
}

function parseEvr(v: string) {
  const s = v.trim();
  if (!s) throw new Error('empty rpm version');
  const m = /^(?:(\d+):)?(.*)$/.exec(s)!;
  const rest = m[2]!;
  const dash = rest.lastIndexOf('-');
  return { epoch: Number(m[1] ?? 0), version: dash >= 0 ? rest.slice(0, dash) : rest, release: dash >= 0 ? rest.slice(dash + 1) : '' };
}

const alnum = (c: string | undefined) => c !== undefined && /[A-Za-z0-9]/.test(c);
const digit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const alpha = (c: string | undefined) => c !== undefined && /[A-Za-z]/.test(c);

export function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while (i < a.length && !alnum(a[i]) && a[i] !== '~' && a[i] !== '^') i++;
    while (j < b.length && !alnum(b[j]) && b[j] !== '~' && b[j] !== '^') j++;
    if (a[i] === '~' || b[j] === '~') {
      if (a[i] !== '~') return 1;
      if (b[j] !== '~') return -1;
      i++;
      j++;
      continue;
    }
    if (a[i] === '^' || b[j] === '^') {
      if (i >= a.length) return -1;
      if (j >= b.length) return 1;
      if (a[i] !== '^') return 1;
      if (b[j] !== '^') return -1;
      i++;
      j++;
      continue;
    }
    if (!(i < a.length && j < b.length)) break;
    let p = i;
    let q = j;
    const isnum = digit(a[p]);
    if (isnum) {
      while (digit(a[p])) p++;
      while (digit(b[q])) q++;
    } else {
      while (alpha(a[p])) p++;
      while (alpha(b[q])) q++;
    }
    if (q === j) return isnum ? 1 : -1;
    let sa = a.slice(i, p);
    let sb = b.slice(j, q);
    if (isnum) {
      sa = sa.replace(/^0+/, '');
      sb = sb.replace(/^0+/, '');
      if (sa.length !== sb.length) return sa.length > sb.length ? 1 : -1;
    }
    if (sa !== sb) return sa < sb ? -1 : 1;
    i = p;
    j = q;
  }
  if (i >= a.length && j >= b.length) return 0;
  return i < a.length ? 1 : -1;
}
