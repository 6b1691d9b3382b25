import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from '../command.js';
import { ApiClient } from '../client.js';
import { apiUrl, clearCredentials, readCredentials, writeCredentials } from '../credentials.js';
import { HangarError } from '../../shared/errors.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

export const authCommands: Command[] = [
  {
    path: ['auth', 'login'],
    summary: 'Store an access token for the CLI (checked against the daemon)',
    usage: 'auth login [--token T | --token-stdin | --data-dir DIR] [--api-url URL]',
    options: {
      token: { type: 'string' },
      'token-stdin': { type: 'boolean' },
      'data-dir': { type: 'string' },
      'api-url': { type: 'string' },
    },
    async run({ flags, out }) {
      let token = flags.token as string | undefined;
      if (flags['token-stdin']) token = await readStdin();
      if (!token && (flags['data-dir'] || !process.stdin.isTTY)) {
        // On the daemon's own host the admin token file is the natural source.
        const dir = (flags['data-dir'] as string | undefined) ?? process.env.HANGAR_DATA_DIR ?? '/var/lib/hangar';
        try {
          token = readFileSync(join(dir, 'admin-token'), 'utf8').trim();
        } catch {
          /* fall through to the error below */
        }
      }
      if (!token) {
        throw new HangarError('USAGE', 'no token given: pass --token, --token-stdin, or --data-dir of a local daemon (to use its admin-token)');
      }
      const url = ((flags['api-url'] as string | undefined) ?? apiUrl()).replace(/\/+$/, '');
      await new ApiClient(url, token).request('GET', '/v1/apps');
      const path = writeCredentials({ ...readCredentials(), api_url: url, access_token: token });
      out.result({ api_url: url, credentials: path }, () => out.line(`Logged in to ${url}; credentials stored in ${path}`));
    },
  },
  {
    path: ['auth', 'logout'],
    summary: 'Forget the stored access token',
    usage: 'auth logout',
    run({ out }) {
      clearCredentials();
      out.result({ logged_out: true }, () => out.line('Logged out'));
    },
  },
  {
    path: ['auth', 'token'],
    summary: 'Print the access token the CLI uses',
    usage: 'auth token',
    run({ out, api }) {
      const token = api().accessToken;
      if (!token) throw new HangarError('UNAUTHORIZED', 'not logged in: run `hangar auth login` or set HANGAR_ACCESS_TOKEN');
      out.result({ token }, () => out.line(token));
    },
  },
  {
    path: ['auth', 'whoami'],
    summary: 'Show which organizations the current token can act on',
    usage: 'auth whoami',
    async run({ out, api }) {
      const res = await api().request<{ organizations: Array<{ slug: string }> }>('GET', '/v1/orgs');
      out.result(res, () => out.line(`Token for: ${res.organizations.map((o) => o.slug).join(', ') || '(no organizations)'}`));
    },
  },
];
