import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '../accounts/index.js';
import { HangarError } from '../shared/errors.js';
import { regErr } from './errors.js';
import { parseRepoName } from './names.js';
import type { Registry } from './registry.js';
import { methodNotAllowed, readBody, sendJson } from './http-util.js';

/** The token endpoint (Docker token auth) and the daemon-side admin API (`/v1/registry/...`). */
export async function tokenEndpoint(reg: Registry, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  let params = query;
  let secret: string | undefined;
  if (req.method === 'POST') {
    // OAuth2 password / refresh-token grant (docker uses it when it holds an identity token).
    params = new URLSearchParams((await readBody(req, 64 * 1024)).toString('utf8'));
    const grant = params.get('grant_type');
    secret = grant === 'refresh_token' ? params.get('refresh_token') ?? undefined : params.get('password') ?? undefined;
  } else if (req.method !== 'GET') {
    throw methodNotAllowed(req.method ?? '');
  }
  const h = req.headers.authorization;
  if (secret === undefined && h) {
    const m = /^(\w+)\s+(.+)$/.exec(h.trim());
    if (m && m[1]!.toLowerCase() === 'basic') {
      const d = Buffer.from(m[2]!, 'base64').toString('utf8');
      secret = d.includes(':') ? d.slice(d.indexOf(':') + 1) : d;
    } else if (m && m[1]!.toLowerCase() === 'bearer') secret = m[2]!;
  }
  let principal: Principal | undefined;
  if (secret !== undefined) {
    try {
      principal = reg.accounts.authenticate(secret);
    } catch (e) {
      if (e instanceof HangarError && e.code === 'UNAUTHORIZED') {
        throw regErr('UNAUTHORIZED', `${e.message} (the registry takes an API token as the password; any user name)`, {
          headers: { 'www-authenticate': `Basic realm="hangar"` },
        });
      }
      throw e;
    }
  }
  const access = reg.auth.grant(principal, params.getAll('scope'));
  const issued = reg.auth.issue(principal, access);
  res.setHeader('cache-control', 'no-store');
  sendJson(res, 200, req.method === 'POST' ? { ...issued, token_type: 'Bearer', scope: params.getAll('scope').join(' ') } : issued);
}


export async function adminApi(reg: Registry, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const principal = reg.accounts.authenticate(/^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim());
  const url = new URL(req.url ?? '/', 'http://daemon');
  if (path === '/v1/registry/gc' && req.method === 'POST') {
    reg.accounts.requireAdmin(principal, 'registry gc');
    const grace = url.searchParams.get('grace_seconds');
    const result = await reg.gc({
      dryRun: url.searchParams.get('dry_run') === 'true' || url.searchParams.get('dry_run') === '1',
      graceMs: grace !== null && /^\d+$/.test(grace) ? Number(grace) * 1000 : undefined,
    });
    return sendJson(res, 200, result);
  }
  if (path === '/v1/registry/repositories' && req.method === 'GET') {
    const db = reg.options.store.db;
    const rows = reg.meta.listRepos().filter((r) => {
      const a = reg.accounts.findApp(parseRepoName(r.name).app);
      return a !== undefined && a.id === r.app_id && reg.accounts.mayAccessOrg(principal, a.org_id);
    });
    const out = rows.map((r) => {
      const tags = (db.prepare('SELECT tag, digest, updated_at FROM registry_tags WHERE repo = ? ORDER BY tag').all(r.name) as Array<{
        tag: string;
        digest: string;
        updated_at: number;
      }>).map((t) => ({ tag: t.tag, digest: t.digest, updated_at: new Date(t.updated_at).toISOString() }));
      return { name: r.name, tags };
    });
    return sendJson(res, 200, { repositories: out });
  }
  throw new HangarError('NOT_FOUND', `no such endpoint: ${req.method} ${path}`);
}
