import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Store } from '../store/index.js';
import { conflict, forbidden, HangarError, notFound, unauthorized } from '../shared/errors.js';
import { newId, nowIso } from '../shared/ids.js';
import { accountsMigrations } from './schema.js';
import { checkName } from './names.js';

export interface Org {
  id: string;
  slug: string;
  name: string;
  created_at: string;
}

export interface App {
  id: string;
  name: string;
  org_id: string;
  created_at: string;
}

export interface TokenInfo {
  id: string;
  name: string;
  org_id: string | null;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

/** Who is calling: resolved from an API token. */
export interface Principal {
  tokenId: string;
  /** null for the admin token, which may act on every organization. */
  orgId: string | null;
}

const TOKEN_PREFIX = 'hgr_';

/**
 * Organizations Hangar keeps for itself (e.g. `hangar-system`, which owns the
 * base-image mirror). Users cannot create them, and listings leave them out.
 */
export const SYSTEM_ORG_PREFIX = 'hangar-';
const USER_ORGS = `slug NOT LIKE '${SYSTEM_ORG_PREFIX}%'`;

function hashToken(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/**
 * Organizations, apps and API tokens, and the one question every other
 * component asks: may this principal touch that org?
 */
export class Accounts {
  constructor(private readonly store: Store) {
    store.migrate('accounts', accountsMigrations);
  }

  private get db() {
    return this.store.db;
  }

  // --- organizations -------------------------------------------------------

  createOrg(slug: string, name = slug): Org {
    checkName('organization', slug);
    if (this.findOrg(slug)) throw conflict(`organization "${slug}" already exists`);
    const org: Org = { id: newId(), slug, name, created_at: nowIso() };
    this.db.prepare('INSERT INTO orgs (id, slug, name, created_at) VALUES (@id, @slug, @name, @created_at)').run(org);
    return org;
  }

  findOrg(slugOrId: string): Org | undefined {
    return this.db.prepare('SELECT * FROM orgs WHERE slug = ? OR id = ?').get(slugOrId, slugOrId) as Org | undefined;
  }

  getOrg(slug: string): Org {
    const org = this.findOrg(slug);
    if (!org) throw notFound(`organization "${slug}" not found; list yours with \`hangar orgs list\``);
    return org;
  }

  listOrgs(principal: Principal): Org[] {
    if (principal.orgId === null) return this.db.prepare(`SELECT * FROM orgs WHERE ${USER_ORGS} ORDER BY slug`).all() as Org[];
    return this.db.prepare('SELECT * FROM orgs WHERE id = ?').all(principal.orgId) as Org[];
  }

  // --- apps ----------------------------------------------------------------

  createApp(name: string, orgId: string): App {
    checkName('app', name);
    if (this.findApp(name)) throw conflict(`app "${name}" already exists; app names are unique on this Hangar`);
    const app: App = { id: newId(), name, org_id: orgId, created_at: nowIso() };
    this.db.prepare('INSERT INTO apps (id, name, org_id, created_at) VALUES (@id, @name, @org_id, @created_at)').run(app);
    return app;
  }

  findApp(name: string): App | undefined {
    return this.db.prepare('SELECT * FROM apps WHERE name = ?').get(name) as App | undefined;
  }

  /**
   * The app, if the principal may see it. Apps of other orgs answer "not
   * found" exactly like missing ones, so names do not leak across orgs.
   */
  getApp(principal: Principal, name: string): App {
    const app = this.findApp(name);
    if (!app || !this.mayAccessOrg(principal, app.org_id)) {
      throw notFound(`app "${name}" not found; check the name with \`hangar apps list\``);
    }
    return app;
  }

  listApps(principal: Principal, orgId?: string): App[] {
    if (orgId !== undefined) {
      this.requireOrgAccess(principal, orgId);
      return this.db.prepare('SELECT * FROM apps WHERE org_id = ? ORDER BY name').all(orgId) as App[];
    }
    if (principal.orgId === null) {
      return this.db
        .prepare(`SELECT * FROM apps WHERE org_id IN (SELECT id FROM orgs WHERE ${USER_ORGS}) ORDER BY name`)
        .all() as App[];
    }
    return this.db.prepare('SELECT * FROM apps WHERE org_id = ? ORDER BY name').all(principal.orgId) as App[];
  }

  deleteApp(appId: string): void {
    this.db.prepare('DELETE FROM apps WHERE id = ?').run(appId);
  }

  // --- access --------------------------------------------------------------

  mayAccessOrg(principal: Principal, orgId: string): boolean {
    return principal.orgId === null || principal.orgId === orgId;
  }

  requireOrgAccess(principal: Principal, orgId: string): void {
    if (!this.mayAccessOrg(principal, orgId)) {
      throw forbidden('this token belongs to another organization; use a token of the organization that owns the resource');
    }
  }

  requireAdmin(principal: Principal, what: string): void {
    if (principal.orgId !== null) throw forbidden(`${what} needs the admin token (see <data-dir>/admin-token)`);
  }

  // --- tokens --------------------------------------------------------------

  /** Creates a token and returns its secret: the only time it is ever visible. */
  createToken(name: string, orgId: string | null, expiresAt?: Date): { token: string; info: TokenInfo } {
    const secret = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const info: TokenInfo = {
      id: newId(),
      name,
      org_id: orgId,
      created_at: nowIso(),
      expires_at: expiresAt ? expiresAt.toISOString() : null,
      revoked_at: null,
      last_used_at: null,
    };
    this.db
      .prepare(
        `INSERT INTO tokens (id, name, org_id, hash, created_at, expires_at)
         VALUES (@id, @name, @org_id, @hash, @created_at, @expires_at)`,
      )
      .run({ ...info, hash: hashToken(secret) });
    return { token: secret, info };
  }

  listTokens(orgId: string | null): TokenInfo[] {
    const cols = 'id, name, org_id, created_at, expires_at, revoked_at, last_used_at';
    if (orgId === null) return this.db.prepare(`SELECT ${cols} FROM tokens ORDER BY created_at`).all() as TokenInfo[];
    return this.db.prepare(`SELECT ${cols} FROM tokens WHERE org_id = ? ORDER BY created_at`).all(orgId) as TokenInfo[];
  }

  revokeToken(principal: Principal, tokenId: string): TokenInfo {
    const row = this.db.prepare('SELECT * FROM tokens WHERE id = ?').get(tokenId) as TokenInfo | undefined;
    if (!row || (row.org_id !== null && !this.mayAccessOrg(principal, row.org_id)) || (row.org_id === null && principal.orgId !== null)) {
      throw notFound(`token ${tokenId} not found; see \`hangar tokens list\``);
    }
    const revokedAt = nowIso();
    this.db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(revokedAt, tokenId);
    return { ...row, revoked_at: row.revoked_at ?? revokedAt };
  }

  /** Resolve a presented secret to a principal, or throw 401. */
  authenticate(secret: string | undefined): Principal {
    if (!secret) throw unauthorized('no access token: run `hangar auth login` or set HANGAR_ACCESS_TOKEN');
    const hash = hashToken(secret);
    const row = this.db.prepare('SELECT id, org_id, hash, expires_at, revoked_at FROM tokens WHERE hash = ?').get(hash) as
      | { id: string; org_id: string | null; hash: string; expires_at: string | null; revoked_at: string | null }
      | undefined;
    // The lookup is by hash, so the comparison below is a belt-and-braces
    // constant-time check rather than the primary defence.
    if (!row || !timingSafeEqual(Buffer.from(row.hash), Buffer.from(hash))) {
      throw unauthorized('access token not recognised: check HANGAR_ACCESS_TOKEN or run `hangar auth login` again');
    }
    if (row.revoked_at) throw unauthorized('access token was revoked: create a new one with `hangar tokens create`');
    if (row.expires_at && Date.parse(row.expires_at) <= Date.now()) {
      throw unauthorized('access token has expired: create a new one with `hangar tokens create`');
    }
    this.db.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?').run(nowIso(), row.id);
    return { tokenId: row.id, orgId: row.org_id };
  }

  /**
   * First start: an org `personal` and an admin token. Returns the admin
   * secret when it was just created (the daemon writes it to admin-token).
   */
  bootstrap(): string | undefined {
    if (!this.findOrg('personal')) this.createOrg('personal', 'Personal');
    const hasAdmin = this.db.prepare('SELECT 1 FROM tokens WHERE org_id IS NULL AND revoked_at IS NULL').get();
    if (hasAdmin) return undefined;
    return this.createToken('admin', null).token;
  }
}

export function assertFound<T>(value: T | undefined, message: string): T {
  if (value === undefined) throw new HangarError('NOT_FOUND', message);
  return value;
}
