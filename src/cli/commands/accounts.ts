import type { Command } from '../command.js';
import { HangarError } from '../../shared/errors.js';

interface AppRow { id: string; name: string; organization: { slug?: string }; status: string; created_at: string }
interface TokenRow { id: string; name: string; org_id: string | null; created_at: string; expires_at: string | null; revoked_at: string | null; last_used_at: string | null }

const need = (v: string | undefined, what: string): string => {
  if (!v) throw new HangarError('USAGE', `missing ${what}; see \`hangar help\``);
  return v;
};

export const accountCommands: Command[] = [
  {
    path: ['orgs', 'list'],
    summary: 'List organizations',
    usage: 'orgs list',
    async run({ out, api }) {
      const res = await api().request<{ organizations: Array<{ slug: string; name: string; created_at: string }> }>('GET', '/v1/orgs');
      out.result(res.organizations, () => out.table(['SLUG', 'NAME', 'CREATED'], res.organizations.map((o) => [o.slug, o.name, o.created_at])));
    },
  },
  {
    path: ['orgs', 'create'],
    summary: 'Create an organization (admin token)',
    usage: 'orgs create SLUG [--name NAME]',
    options: { name: { type: 'string' } },
    async run({ args, flags, out, api }) {
      const slug = need(args[0], 'organization slug');
      const org = await api().request('POST', '/v1/orgs', { slug, name: flags.name });
      out.result(org, () => out.line(`Created organization ${slug}`));
    },
  },
  {
    path: ['apps', 'create'],
    summary: 'Create an app',
    usage: 'apps create NAME [-o ORG]',
    options: { org: { type: 'string', short: 'o' } },
    async run({ args, flags, out, api }) {
      const name = need(args[0], 'app name');
      const app = await api().request<AppRow>('POST', '/v1/apps', { app_name: name, org_slug: flags.org });
      out.result(app, () => out.line(`New app created: ${app.name} (organization ${app.organization.slug})`));
    },
  },
  {
    path: ['apps', 'list'],
    summary: 'List apps',
    usage: 'apps list [-o ORG]',
    options: { org: { type: 'string', short: 'o' } },
    async run({ flags, out, api }) {
      const q = flags.org ? `?org_slug=${encodeURIComponent(flags.org as string)}` : '';
      const res = await api().request<{ apps: AppRow[] }>('GET', `/v1/apps${q}`);
      out.result(res.apps, () => out.table(['NAME', 'ORG', 'STATUS', 'CREATED'], res.apps.map((a) => [a.name, a.organization.slug, a.status, a.created_at])));
    },
  },
  {
    path: ['apps', 'destroy'],
    summary: 'Destroy an app with its machines, volumes and images',
    usage: 'apps destroy NAME [--force]',
    options: { force: { type: 'boolean' }, yes: { type: 'boolean', short: 'y' } },
    async run({ args, flags, out, api }) {
      const name = need(args[0], 'app name');
      await api().request('DELETE', `/v1/apps/${encodeURIComponent(name)}${flags.force ? '?force=true' : ''}`);
      out.result({ destroyed: name }, () => out.line(`Destroyed app ${name}`));
    },
  },
  {
    path: ['tokens', 'create'],
    summary: 'Create an organization-scoped API token (printed once)',
    usage: 'tokens create [-o ORG] [--name NAME] [--expiry 24h]',
    options: { org: { type: 'string', short: 'o' }, name: { type: 'string', short: 'n' }, expiry: { type: 'string', short: 'x' } },
    async run({ flags, out, api }) {
      const res = await api().request<TokenRow & { token: string }>('POST', '/v1/tokens', {
        name: flags.name ?? 'token',
        org_slug: flags.org,
        expiry: flags.expiry,
      });
      out.result(res, () => out.line(res.token));
    },
  },
  {
    path: ['tokens', 'list'],
    summary: 'List API tokens (never their secrets)',
    usage: 'tokens list [-o ORG]',
    options: { org: { type: 'string', short: 'o' } },
    async run({ flags, out, api }) {
      const q = flags.org ? `?org_slug=${encodeURIComponent(flags.org as string)}` : '';
      const res = await api().request<{ tokens: TokenRow[] }>('GET', `/v1/tokens${q}`);
      out.result(res.tokens, () =>
        out.table(
          ['ID', 'NAME', 'CREATED', 'EXPIRES', 'STATUS'],
          res.tokens.map((t) => [t.id, t.name, t.created_at, t.expires_at ?? 'never', t.revoked_at ? 'revoked' : 'active']),
        ),
      );
    },
  },
  {
    path: ['tokens', 'revoke'],
    summary: 'Revoke an API token',
    usage: 'tokens revoke ID',
    async run({ args, out, api }) {
      const id = need(args[0], 'token id');
      const res = await api().request('DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
      out.result(res, () => out.line(`Revoked token ${id}`));
    },
  },
];
