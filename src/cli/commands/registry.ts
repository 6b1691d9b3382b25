import type { Command } from '../command.js';
import { apiUrl } from '../credentials.js';
import { HangarError } from '../../shared/errors.js';
import { writeDockerConfig } from '../../registry/docker-config.js';
import type { GcResult } from '../../registry/registry.js';

function durationSeconds(s: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(s);
  if (!m) throw new HangarError('USAGE', `invalid duration "${s}": use e.g. 0, 30m, 1h, 2d`);
  return Number(m[1]) * ({ '': 1, s: 1, m: 60, h: 3600, d: 86400 } as Record<string, number>)[m[2]!]!;
}

function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

export const registryCommands: Command[] = [
  {
    path: ['registry', 'gc'],
    summary: 'Delete registry blobs no manifest references (admin token; safe while pushes run)',
    usage: 'registry gc [--dry-run] [--grace 1h]',
    options: { 'dry-run': { type: 'boolean' }, grace: { type: 'string' } },
    async run({ flags, out, api }) {
      const q = new URLSearchParams();
      if (flags['dry-run']) q.set('dry_run', 'true');
      if (typeof flags.grace === 'string') q.set('grace_seconds', String(durationSeconds(flags.grace)));
      const res = await api().request<GcResult>('POST', `/v1/registry/gc${q.size ? `?${q}` : ''}`);
      out.result(res, () => {
        const verb = res.dry_run ? 'Would delete' : 'Deleted';
        out.line(`${verb} ${res.blobs_deleted} blobs (${mb(res.bytes_freed)}); ${res.stale_repositories_dropped} repositories of destroyed apps dropped; ${res.uploads_expired} expired uploads removed`);
      });
    },
  },
  {
    path: ['registry', 'list'],
    summary: 'List the repositories and tags your organizations own',
    usage: 'registry list',
    async run({ out, api }) {
      const res = await api().request<{ repositories: Array<{ name: string; tags: Array<{ tag: string; digest: string; updated_at: string }> }> }>(
        'GET',
        '/v1/registry/repositories',
      );
      out.result(res.repositories, () =>
        out.table(
          ['REPOSITORY', 'TAG', 'DIGEST', 'UPDATED'],
          res.repositories.flatMap((r) => (r.tags.length ? r.tags.map((t) => [r.name, t.tag, t.digest.slice(0, 19), t.updated_at]) : [[r.name, '', '', '']])),
        ),
      );
    },
  },
  {
    path: ['auth', 'docker'],
    summary: "Write the registry's credentials to ~/.docker/config.json (docker, skopeo, buildah, podman)",
    usage: 'auth docker [--no-containers-conf]',
    options: { 'no-containers-conf': { type: 'boolean' } },
    async run({ flags, out, api }) {
      const client = api();
      const token = client.accessToken;
      if (!token) throw new HangarError('UNAUTHORIZED', 'not logged in: run `hangar auth login` or set HANGAR_ACCESS_TOKEN');
      // Check the token before storing it where docker will use it.
      await client.request('GET', '/v1/apps');
      const host = new URL(apiUrl()).host;
      const res = writeDockerConfig({ host, token, containersDropIn: !flags['no-containers-conf'] });
      out.result({ registry: host, ...res }, () => {
        out.line(`Docker credentials for ${host} written to ${res.configPath}`);
        if (res.registriesConfPath) out.line(`Marked ${host} as a plain-HTTP registry for skopeo/buildah/podman in ${res.registriesConfPath}`);
        out.line(`Try: docker push ${host}/<app>:<tag>`);
      });
    },
  },
];
