import { z } from 'zod';
import { SYSTEM_ORG_PREFIX, type Accounts, type App, type Org } from '../accounts/index.js';
import { readJson, type Router } from '../http/index.js';
import { parseInput } from '../shared/validate.js';
import { badRequest } from '../shared/errors.js';
import { principalOf } from './auth.js';

/** Hooks other components use to refuse or clean up when an app goes away. */
export interface AppLifecycleHooks {
  /** Throw a HangarError to refuse the destroy (e.g. machines still running). */
  beforeAppDestroy?(app: App, opts: { force: boolean }): Promise<void> | void;
  afterAppDestroy?(app: App): Promise<void> | void;
}

const createAppBody = z.object({
  app_name: z.string(),
  org_slug: z.string().optional(),
  network: z.string().optional(),
});
const createOrgBody = z.object({ slug: z.string(), name: z.string().optional() });
const createTokenBody = z.object({
  name: z.string().min(1).max(100).default('token'),
  org_slug: z.string().optional(),
  expiry: z
    .string()
    .regex(/^\d+[smhd]$/, 'use a duration such as 30m, 24h or 90d')
    .optional(),
});

function appView(app: App, org: Org | undefined) {
  // Fly's App shape, plus created_at.
  return { id: app.id, name: app.name, organization: { name: org?.name, slug: org?.slug }, status: 'deployed', created_at: app.created_at };
}

function durationMs(s: string): number {
  const n = Number(s.slice(0, -1));
  const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[s.slice(-1) as 's' | 'm' | 'h' | 'd'];
  return n * unit;
}

export function accountsRoutes(router: Router, accounts: Accounts, hooks: AppLifecycleHooks = {}): void {
  const orgOf = (id: string) => accounts.findOrg(id);

  router.get('/v1/apps', ({ req, url }) => {
    const principal = principalOf(accounts, req);
    const slug = url.searchParams.get('org_slug');
    const orgId = slug ? accounts.getOrg(slug).id : undefined;
    const apps = accounts.listApps(principal, orgId);
    return { total_apps: apps.length, apps: apps.map((a) => appView(a, orgOf(a.org_id))) };
  });

  router.post('/v1/apps', async ({ req, res }) => {
    const principal = principalOf(accounts, req);
    const body = parseInput(createAppBody, await readJson(req), 'app');
    const org = body.org_slug
      ? accounts.getOrg(body.org_slug)
      : principal.orgId
        ? accounts.findOrg(principal.orgId)!
        : accounts.getOrg('personal');
    accounts.requireOrgAccess(principal, org.id);
    const app = accounts.createApp(body.app_name, org.id);
    res.statusCode = 201;
    return appView(app, org);
  });

  router.get('/v1/apps/:app', ({ req, params }) => {
    const app = accounts.getApp(principalOf(accounts, req), params.app!);
    return appView(app, orgOf(app.org_id));
  });

  router.delete('/v1/apps/:app', async ({ req, res, url, params }) => {
    const app = accounts.getApp(principalOf(accounts, req), params.app!);
    const force = url.searchParams.get('force') === 'true';
    await hooks.beforeAppDestroy?.(app, { force });
    accounts.deleteApp(app.id);
    await hooks.afterAppDestroy?.(app);
    res.writeHead(202).end();
  });

  router.get('/v1/orgs', ({ req }) => {
    const principal = principalOf(accounts, req);
    return { organizations: accounts.listOrgs(principal) };
  });

  router.post('/v1/orgs', async ({ req, res }) => {
    const principal = principalOf(accounts, req);
    accounts.requireAdmin(principal, 'creating an organization');
    const body = parseInput(createOrgBody, await readJson(req), 'organization');
    if (body.slug.startsWith(SYSTEM_ORG_PREFIX)) throw badRequest(`organization names starting with "${SYSTEM_ORG_PREFIX}" are reserved for Hangar itself; choose another`);
    res.statusCode = 201;
    return accounts.createOrg(body.slug, body.name ?? body.slug);
  });

  router.get('/v1/tokens', ({ req, url }) => {
    const principal = principalOf(accounts, req);
    const slug = url.searchParams.get('org_slug');
    if (slug) {
      const org = accounts.getOrg(slug);
      accounts.requireOrgAccess(principal, org.id);
      return { tokens: accounts.listTokens(org.id) };
    }
    return { tokens: accounts.listTokens(principal.orgId) };
  });

  router.post('/v1/tokens', async ({ req, res }) => {
    const principal = principalOf(accounts, req);
    const body = parseInput(createTokenBody, await readJson(req), 'token');
    let orgId: string;
    if (body.org_slug) orgId = accounts.getOrg(body.org_slug).id;
    else if (principal.orgId) orgId = principal.orgId;
    else throw badRequest('say which organization the token is for: --org SLUG');
    accounts.requireOrgAccess(principal, orgId);
    const expires = body.expiry ? new Date(Date.now() + durationMs(body.expiry)) : undefined;
    const { token, info } = accounts.createToken(body.name, orgId, expires);
    res.statusCode = 201;
    return { token, ...info };
  });

  router.delete('/v1/tokens/:id', ({ req, params }) => {
    return accounts.revokeToken(principalOf(accounts, req), params.id!);
  });
}
