import type { IncomingMessage } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Accounts, App, Principal } from '../accounts/index.js';
import { HangarError } from '../shared/errors.js';
import { regErr, RegistryError } from './errors.js';
import { parseRepoName } from './names.js';
import { ALL_ACTIONS, looksLikeJwt, parseScopes, SERVICE, TokenSigner, type Access, type Action } from './tokens.js';

/** Who is calling the registry. `scoped` is set when they came with a registry token (its grants). */
export interface Caller {
  principal: Principal;
  scoped?: Access[];
  anonymous?: boolean;
}

export const ANONYMOUS_SUB = 'anonymous';

import { isMirrorRepo } from './mirror-prefix.js';
export { MIRROR_PREFIX, isMirrorRepo } from './mirror-prefix.js';

export class RegistryAuth {
  constructor(
    private readonly accounts: Accounts,
    readonly signer: TokenSigner,
    readonly ttlSeconds: number,
  ) {}

  /** The `WWW-Authenticate` challenge that sends a Docker client to the token endpoint. */
  challenge(req: IncomingMessage, scope?: string, error?: string): string {
    const host = req.headers.host ?? 'localhost';
    let c = `Bearer realm="http://${host}/auth/token",service="${SERVICE}"`;
    if (scope) c += `,scope="${scope}"`;
    if (error) c += `,error="${error}"`;
    return c;
  }

  unauthorized(req: IncomingMessage, message: string, scope?: string, error?: string): HangarError {
    return regErr('UNAUTHORIZED', message, { headers: { 'www-authenticate': this.challenge(req, scope, error) } });
  }

  /**
   * Who sent this request: a registry token (Bearer JWT), an API token as
   * `Bearer <token>` or as Basic auth password, or nobody (undefined).
   */
  identify(req: IncomingMessage, scope?: string): Caller | undefined {
    const h = req.headers.authorization;
    if (!h) return undefined;
    const m = /^(\w+)\s+(.+)$/.exec(h.trim());
    if (!m) throw this.unauthorized(req, 'malformed Authorization header', scope);
    const kind = m[1]!.toLowerCase();
    const value = m[2]!.trim();
    try {
      if (kind === 'bearer') {
        if (looksLikeJwt(value)) {
          const claims = this.signer.verify(value);
          if (claims === 'expired') throw this.unauthorized(req, 'registry token has expired; log in again (docker login, or `hangar auth docker`)', scope, 'invalid_token');
          if (!claims) throw this.unauthorized(req, 'registry token is not valid; log in again', scope, 'invalid_token');
          return {
            principal: { tokenId: claims.sub, orgId: claims.org },
            scoped: claims.access,
            anonymous: claims.sub === ANONYMOUS_SUB,
          };
        }
        return { principal: this.accounts.authenticate(value) };
      }
      if (kind === 'basic') {
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        return { principal: this.accounts.authenticate(colon >= 0 ? decoded.slice(colon + 1) : decoded) };
      }
    } catch (e) {
      if (e instanceof RegistryError) throw e;
      if (e instanceof HangarError && e.code === 'UNAUTHORIZED') throw this.unauthorized(req, e.message, scope);
      throw e;
    }
    throw this.unauthorized(req, `unsupported Authorization scheme "${m[1]}": use Basic (any user, API token as password) or Bearer`, scope);
  }

  /**
   * The app behind a repository if the principal's organization owns it.
   * A missing app and another org's app give the same answer, so names do
   * not leak across organizations; only the admin token learns NAME_UNKNOWN.
   */
  appFor(principal: Principal, repo: string): App | undefined {
    const { app: appName } = parseRepoName(repo);
    const app = this.accounts.findApp(appName);
    if (!app) return undefined;
    // The base-image mirror (src/build/mirror.ts) is readable by every org; authorize() limits writes to the admin.
    if (isMirrorRepo(repo)) return app;
    return this.accounts.mayAccessOrg(principal, app.org_id) ? app : undefined;
  }

  /** Check that the caller may do `action` on `repo`; returns the app that owns it. */
  authorize(req: IncomingMessage, caller: Caller | undefined, repo: string, action: Action): App {
    parseRepoName(repo);
    const scope = `repository:${repo}:${action === 'pull' ? 'pull' : action === 'push' ? 'pull,push' : action}`;
    if (!caller) throw this.unauthorized(req, 'authentication required: log in with an API token (docker login, or `hangar auth docker`)', scope);
    if (caller.anonymous) throw this.unauthorized(req, 'authentication required: log in with an API token (docker login, or `hangar auth docker`)', scope);
    if (caller.scoped) {
      const grant = caller.scoped.find((a) => a.type === 'repository' && a.name === repo);
      if (!grant) throw this.unauthorized(req, `the registry token does not cover ${repo}; ask the token endpoint for this scope`, scope, 'insufficient_scope');
      if (!grant.actions.includes(action)) throw denied();
    }
    const app = this.appFor(caller.principal, repo);
    if (!app) {
      if (caller.principal.orgId === null) throw regErr('NAME_UNKNOWN', `repository ${repo} is not known: its app does not exist; create it with \`hangar apps create\``);
      throw denied();
    }
    if (isMirrorRepo(repo) && action !== 'pull' && caller.principal.orgId !== null) throw denied();
    return app;
  }

  /** Same question as authorize, as a yes/no (cross-repository mount checks its source this way). */
  may(caller: Caller, repo: string, action: Action): boolean {
    try {
      parseRepoName(repo);
    } catch {
      return false;
    }
    if (caller.scoped) {
      const grant = caller.scoped.find((a) => a.type === 'repository' && a.name === repo);
      if (!grant || !grant.actions.includes(action)) return false;
    }
    return this.appFor(caller.principal, repo) !== undefined;
  }

  /**
   * The token endpoint's decision: of the scopes asked for, grant only what
   * the principal may do. Repositories it may not touch get an entry with no
   * actions, so the registry answers DENIED rather than asking again.
   */
  grant(principal: Principal | undefined, scopeParams: string[]): Access[] {
    const out: Access[] = [];
    for (const req of parseScopes(scopeParams)) {
      if (req.type === 'registry' && req.name === 'catalog') {
        out.push({ type: 'registry', name: 'catalog', actions: principal ? ['*'] : [] });
        continue;
      }
      if (req.type !== 'repository') continue;
      let allowed: string[] = [];
      if (principal) {
        try {
          const app = parseRepoName(req.name) && this.accounts.findApp(parseRepoName(req.name).app);
          const mirror = isMirrorRepo(req.name) && app !== undefined;
          const mayAct = principal.orgId === null || mirror || (app !== undefined && this.accounts.mayAccessOrg(principal, app.org_id));
          if (mayAct) {
            const wanted = req.actions.includes('*') ? ALL_ACTIONS : req.actions;
            allowed = ALL_ACTIONS.filter((a) => wanted.includes(a) && (principal.orgId === null || !mirror || a === 'pull'));
          }
        } catch {
          allowed = [];
        }
      }
      out.push({ type: 'repository', name: req.name, actions: allowed });
    }
    return out;
  }

  issue(principal: Principal | undefined, access: Access[]): { token: string; access_token: string; expires_in: number; issued_at: string } {
    const now = Math.floor(Date.now() / 1000);
    const token = this.signer.sign({
      iss: SERVICE,
      aud: SERVICE,
      sub: principal?.tokenId ?? ANONYMOUS_SUB,
      org: principal ? principal.orgId : '',
      iat: now,
      nbf: now,
      exp: now + this.ttlSeconds,
      jti: randomUUID(),
      access,
    });
    return { token, access_token: token, expires_in: this.ttlSeconds, issued_at: new Date(now * 1000).toISOString() };
  }
}

function denied(): HangarError {
  return regErr('DENIED', 'requested access to the resource is denied: the repository does not exist or belongs to another organization');
}
