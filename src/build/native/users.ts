import { readFileSync } from 'node:fs';
import { HangarError } from '../../shared/errors.js';
import { pathInRoot } from './paths.js';

export interface Ids {
  uid: number;
  gid: number;
}

const NUMERIC = /^\d+$/;

function table(root: string | undefined, file: string): string[][] {
  if (!root) return [];
  try {
    return readFileSync(pathInRoot(root, file), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':'));
  } catch {
    return [];
  }
}

/**
 * A `USER`/`--chown` spec (`name`, `uid`, `name:group`, `uid:gid`) as ids,
 * looked up in the image's /etc/passwd and /etc/group as Docker does: a
 * name must exist; a bare uid without a passwd entry gets gid 0; with a
 * group given, the user's primary group is replaced.
 */
export function resolveIds(root: string | undefined, spec: string, what: string): Ids {
  const [user = '', group] = spec.split(':', 2);
  if (!user) throw new HangarError('BUILD_FAILED', `${what}: "${spec}" names no user`, { status: 422 });
  const passwd = table(root, '/etc/passwd');
  let uid: number;
  let gid = 0;
  const row = NUMERIC.test(user) ? passwd.find((r) => r[2] === user) : passwd.find((r) => r[0] === user);
  if (NUMERIC.test(user)) uid = Number(user);
  else if (row) uid = Number(row[2]);
  else throw new HangarError('BUILD_FAILED', `${what}: unable to find user ${user}: no matching entries in the image's /etc/passwd; create it first (e.g. RUN useradd ${user}) or use a numeric uid`, { status: 422 });
  if (row && NUMERIC.test(row[3] ?? '')) gid = Number(row[3]);
  if (group !== undefined && group !== '') {
    if (NUMERIC.test(group)) gid = Number(group);
    else {
      const g = table(root, '/etc/group').find((r) => r[0] === group);
      if (!g) throw new HangarError('BUILD_FAILED', `${what}: unable to find group ${group}: no matching entries in the image's /etc/group`, { status: 422 });
      gid = Number(g[2]);
    }
  }
  if (!Number.isSafeInteger(uid) || uid > 0xffffffff || !Number.isSafeInteger(gid) || gid > 0xffffffff) {
    throw new HangarError('BUILD_FAILED', `${what}: "${spec}" is not a valid user/group id`, { status: 422 });
  }
  return { uid, gid };
}

/**
 * The groups a RUN step's process has, as Docker gives them: the primary
 * gid, then every group of the image's /etc/group that lists the user by
 * name (a uid without a passwd entry has only its gid).
 */
export function groupsOf(root: string | undefined, ids: Ids): number[] {
  const name = table(root, '/etc/passwd').find((r) => r[2] === String(ids.uid))?.[0];
  const extra = name
    ? table(root, '/etc/group')
        .filter((r) => (r[3] ?? '').split(',').includes(name) && NUMERIC.test(r[2] ?? ''))
        .map((r) => Number(r[2]))
        .filter((g) => g <= 0xffffffff)
    : [];
  return [...new Set([ids.gid, ...extra])];
}

/** The home directory of `uid` in the image (Docker's default HOME for RUN): its passwd entry, else /root for root and / otherwise. */
export function homeOf(root: string | undefined, uid: number): string {
  const row = table(root, '/etc/passwd').find((r) => r[2] === String(uid));
  return row?.[5] || (uid === 0 ? '/root' : '/');
}
