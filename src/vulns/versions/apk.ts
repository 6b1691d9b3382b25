/**
 * Alpine apk-tools version ordering (src/version.c, apk-tools 2): dotted
 * numbers (leading zeros compare as fractions), one optional letter,
 * `_suffix[N]` where alpha < beta < pre < rc < (none) < cvs < svn < git < hg < p,
 * then `-rN`.
 */
const enum T {
  Invalid = -1,
  DigitOrZero = 0,
  Digit = 1,
  Letter = 2,
  Suffix = 3,
  SuffixNo = 4,
  RevisionNo = 5,
  End = 6,
}

const PRE = ['alpha', 'beta', 'pre', 'rc'];
const POST = ['cvs', 'svn', 'git', 'hg', 'p'];

interface Cursor {
  s: string;
  pos: number;
  type: T;
}

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isLower = (c: string | undefined) => c !== undefined && c >= 'a' && c <= 'z';

function nextToken(c: Cursor): void {
  let n: T = T.Invalid;
  const ch = c.s[c.pos];
  if (ch === undefined) n = T.End;
  else if ((c.type === T.Digit || c.type === T.DigitOrZero) && isLower(ch)) n = T.Letter;
  else if (c.type === T.Letter && isDigit(ch)) n = T.Digit;
  else if (c.type === T.Suffix && isDigit(ch)) n = T.SuffixNo;
  else {
    if (ch === '.') n = T.DigitOrZero;
    else if (ch === '_') n = T.Suffix;
    else if (ch === '-' && c.s[c.pos + 1] === 'r') {
      n = T.RevisionNo;
      c.pos++;
    }
    c.pos++;
  }
  if (n < c.type) {
    if (!((n === T.DigitOrZero && c.type === T.Digit) || (n === T.Suffix && c.type === T.SuffixNo) || (n === T.Digit && c.type === T.Letter))) n = T.Invalid;
  }
  c.type = n;
}

function getToken(c: Cursor): number {
  let v = 0;
  let i = c.pos;
  const s = c.s;
  let nt: T = T.Invalid;
  if (i >= s.length) {
    c.type = T.End;
    return 0;
  }
  // Leading zeros after a dot make the component compare like a fraction.
  const leadingZero = c.type === T.DigitOrZero && s[i] === '0';
  switch (leadingZero ? -2 : c.type) {
    case -2:
      while (s[i] === '0') i++;
      nt = T.Digit;
      v = -(i - c.pos);
      break;
    case T.DigitOrZero:
    case T.Digit:
    case T.SuffixNo:
    case T.RevisionNo:
      while (isDigit(s[i])) v = v * 10 + (s.charCodeAt(i++) - 48);
      break;
    case T.Letter:
      v = s.charCodeAt(i++);
      break;
    case T.Suffix: {
      const rest = s.slice(i);
      const pre = PRE.findIndex((p) => rest.startsWith(p));
      if (pre >= 0) {
        v = pre - PRE.length;
        i += PRE[pre]!.length;
        break;
      }
      const post = POST.findIndex((p) => rest.startsWith(p));
      if (post >= 0) {
        v = post;
        i += POST[post]!.length;
        break;
      }
      c.type = T.Invalid;
      return -1;
    }
    default:
      c.type = T.Invalid;
      return -1;
  }
  c.pos = i;
  if (c.pos >= s.length) c.type = T.End;
  else if (nt !== T.Invalid) c.type = nt;
  else nextToken(c);
  return v;
}

export function isValidApk(v: string): boolean {
  const c: Cursor = { s: v.trim(), pos: 0, type: T.Digit };
  if (!isDigit(c.s[0])) return false;
  while (c.type !== T.End && c.type !== T.Invalid) getToken(c);
  return c.type === T.End;
}

export function compareApk(a: string, b: string): number {
  for (const v of [a, b]) if (!isValidApk(v)) throw new Error(`invalid Alpine version "${v}"`);
  const ca: Cursor = { s: a.trim(), pos: 0, type: T.Digit };
  const cb: Cursor = { s: b.trim(), pos: 0, type: T.Digit };
  let av = 0;
  let bv = 0;
  while (ca.type === cb.type && ca.type !== T.End && ca.type !== T.Invalid && av === bv) {
    av = getToken(ca);
    bv = getToken(cb);
  }
  if (av < bv) return -1;
  if (av > bv) return 1;
  if (ca.type === cb.type) return 0;
  // Equal so far: the longer version is newer unless what follows is a pre-release suffix.
  if (ca.type === T.Suffix && getToken({ ...ca }) < 0) return -1;
  if (cb.type === T.Suffix && getToken({ ...cb }) < 0) return 1;
  if (ca.type > cb.type) return -1;
  if (cb.type > ca.type) return 1;
  return 0;
}
