import { basename, resolve, join } from 'node:path';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { Command, CommandContext } from '../command.js';
import type { ApiClient, ApiResponse } from '../client.js';
import { appOption } from '../app-flag.js';
import { HangarError } from '../../shared/errors.js';
import { loadAppConfig, describeKeyReport, resolveLocalFiles, type AppConfig, type LoadedAppConfig } from '../../appconfig/index.js';
// Not build/index.js: that also loads the daemon's builder (SQLite, registry), a third of a second of CLI start-up.
import { planContext, contextTarStream } from '../../build/context.js';
import { localBuild } from '../../build/local.js';
import { deploymentTag, isValidLabel } from '../../build/tags.js';

type Flags = CommandContext['flags'];
const enc = encodeURIComponent;
const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

interface ReleaseView {
  id: string;
  version: number;
  image: string;
  image_digest: string | null;
  strategy: string;
  status: string;
  description: string;
  user: string;
  reason: string | null;
  created_at: string;
  finished_at: string | null;
}
interface MachineSummary { id: string; name: string; group: string; state: string; image: string; release_version: string | null; host_ports: Record<string, number>; reason?: string }
interface BuildResult { image: string; repository: string; tag: string; digest: string; ref: string; durationMs: number }

/** Read an NDJSON response: log lines go to `onLog`; resolves with `result`, throws the `error`. */
export async function readNdjson<T>(res: ApiResponse, onLog: (line: string) => void): Promise<T> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (!line) continue;
      const msg = JSON.parse(line) as { log?: string; result?: T; error?: { code: string; message: string; status?: number } };
      if (msg.log !== undefined) onLog(msg.log);
      if (msg.error) throw new HangarError(msg.error.code, msg.error.message, { status: msg.error.status });
      if ('result' in msg) return msg.result as T;
    }
  }
  throw new HangarError('API_ERROR', 'the daemon closed the connection before the operation finished; check `hangar status` and the daemon log');
}

function kvList(list: unknown, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of (list as string[] | undefined) ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new HangarError('USAGE', `${flag} takes NAME=VALUE, got "${kv}"`);
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

function loadConfig(ctx: CommandContext, dir: string): LoadedAppConfig | undefined {
  const explicit = str(ctx.flags.config);
  const loaded = loadAppConfig(explicit ?? dir);
  if (loaded) for (const line of describeKeyReport(loaded.report, basename(loaded.path))) ctx.out.warn(line);
  return loaded;
}

function appName(flags: Flags, config: AppConfig | undefined): string {
  const a = str(flags.app) ?? process.env.HANGAR_APP ?? config?.app;
  if (!a) throw new HangarError('USAGE', 'which app? pass -a APP, or run in a directory with a hangar.toml or fly.toml (hangar launch writes one)');
  return a;
}

function registryHost(api: ApiClient): string {
  return new URL(api.baseUrl).host;
}

function progressBar(total: number) {
  const tty = Boolean(process.stderr.isTTY);
  let last = 0;
  return {
    update(sent: number) {
      if (!tty) return;
      const now = Date.now();
      if (now - last < 100 && sent < total) return;
      last = now;
      const pct = total ? Math.min(1, sent / total) : 1;
      const width = 30;
      const fill = Math.round(pct * width);
      process.stderr.write(`\rSending build context [${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${(sent / 1e6).toFixed(1)}/${(total / 1e6).toFixed(1)} MB`);
    },
    done() {
      if (tty) process.stderr.write('\n');
    },
  };
}

interface BuiltImage {
  /** host/app:tag */
  image: string;
  digest: string | null;
}

async function build(ctx: CommandContext, app: string, loaded: LoadedAppConfig | undefined, contextDir: string): Promise<BuiltImage> {
  const { flags, out } = ctx;
  const cfgBuild = loaded?.config.build;
  const dockerfile = str(flags.dockerfile) ?? cfgBuild?.dockerfile ?? 'Dockerfile';
  const target = str(flags['build-target']) ?? cfgBuild?.['build-target'] ?? cfgBuild?.build_target;
  const buildArgs = { ...(cfgBuild?.args ?? {}), ...kvList(flags['build-arg'], '--build-arg') };
  const secrets = kvList(flags['build-secret'], '--build-secret');
  const label = str(flags['image-label']);
  if (label !== undefined && !isValidLabel(label)) throw new HangarError('USAGE', `--image-label "${label}" is not a valid tag: letters, digits, _ . - (max 128)`);
  const noCache = Boolean(flags['no-cache']);
  const api = ctx.api();
  if (flags['build-local'] || flags['local-only']) {
    const host = registryHost(api);
    const token = api.accessToken;
    if (!token) throw new HangarError('UNAUTHORIZED', 'no access token: run `hangar auth login` or set HANGAR_ACCESS_TOKEN');
    let tag = label;
    if (!tag) {
      // No tags yet (404) or no answer: any deployment tag is free.
      const listed = await api.request<{ tags?: string[] }>('GET', `/v2/${enc(app)}/tags/list`).catch(() => undefined);
      const taken = new Set(listed?.tags ?? []);
      tag = deploymentTag(new Date(), (t) => taken.has(t));
    }
    const image = `${host}/${app}:${tag}`;
    const push = !flags['build-only'] || Boolean(flags.push);
    const res = await localBuild({
      contextDir,
      dockerfile,
      registryHost: host,
      token,
      image,
      target,
      buildArgs,
      secrets,
      noCache,
      push,
      onLine: (l) => out.info(l),
      engine: (process.env.HANGAR_LOCAL_ENGINE as 'docker' | 'buildah' | undefined) || undefined,
    });
    out.info(`built ${image} locally with ${res.engine}${push ? ' and pushed it to Hangar' : ''}`);
    return { image, digest: res.digest };
  }
  const plan = planContext(contextDir, dockerfile, cfgBuild?.ignorefile);
  out.info(`Sending build context: ${plan.entries.filter((e) => e.type === 'file').length} files, ${(plan.bytes / 1e6).toFixed(1)} MB (${plan.excluded} excluded by .dockerignore)`);
  const bar = progressBar(plan.bytes);
  const body = contextTarStream(plan, (sent) => bar.update(sent));
  body.on('end', () => bar.done());
  const options = Buffer.from(
    JSON.stringify({ dockerfile: plan.dockerfile, target, build_args: buildArgs, secrets, no_cache: noCache, label }),
  ).toString('base64');
  const res = await api.raw('POST', `/v1/apps/${enc(app)}/builds`, undefined, {
    rawBody: body,
    headers: { 'content-type': 'application/x-tar', 'x-hangar-build-options': options },
  });
  const result = await readNdjson<BuildResult>(res, (l) => out.info(l));
  return { image: result.image, digest: result.digest };
}

async function deployImage(ctx: CommandContext, app: string, image: string, config: AppConfig, extra: Record<string, unknown> = {}): Promise<number> {
  const { flags, out } = ctx;
  const body = {
    image,
    config,
    strategy: str(flags.strategy),
    wait_timeout: str(flags['wait-timeout']) === undefined ? undefined : /^\d+$/.test(str(flags['wait-timeout'])!) ? Number(flags['wait-timeout']) : str(flags['wait-timeout']),
    detach: Boolean(flags.detach),
    ...extra,
  };
  if (flags.detach) {
    const r = await ctx.api().request<{ release: ReleaseView }>('POST', `/v1/apps/${enc(app)}/deploys`, body);
    out.result(r, () => out.line(`Release v${r.release.version} of ${app} started in the background (${r.release.image}); follow it with \`hangar status -a ${app}\``));
    return 0;
  }
  const res = await ctx.api().raw('POST', `/v1/apps/${enc(app)}/deploys`, body);
  const r = await readNdjson<{ release: ReleaseView; machines: MachineSummary[] }>(res, (l) => out.info(l));
  out.result(r, () => {
    out.line(`Release v${r.release.version} of ${app} is live: ${r.release.image}`);
    for (const m of r.machines) {
      const ports = Object.entries(m.host_ports ?? {}).map(([g, h]) => `127.0.0.1:${h} -> ${g}`).join(', ');
      out.line(`  ${m.id}  ${m.group}  ${m.state}${ports ? `  ${ports}` : ''}`);
    }
  });
  return 0;
}

function withImageDigest(image: string, digest: string | null): string {
  return digest && !image.includes('@') ? `${image}@${digest}` : image;
}

const buildFlags = {
  config: { type: 'string' as const, short: 'c' },
  dockerfile: { type: 'string' as const },
  'build-target': { type: 'string' as const },
  'build-arg': { type: 'string' as const, multiple: true },
  'build-secret': { type: 'string' as const, multiple: true },
  'no-cache': { type: 'boolean' as const },
  'image-label': { type: 'string' as const },
  'build-local': { type: 'boolean' as const },
  'local-only': { type: 'boolean' as const },
};

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new HangarError('USAGE', what);
  return v;
}

export const deployCommands: Command[] = [
  {
    path: ['deploy'],
    summary: 'Build the Dockerfile (or take --image) and roll it out as a new release',
    usage: 'deploy [DIR] [-a APP] [--image REF] [--build-only --push] [--strategy S] [--detach] [...]',
    options: {
      ...appOption,
      ...buildFlags,
      image: { type: 'string' as const, short: 'i' },
      'build-only': { type: 'boolean' as const },
      push: { type: 'boolean' as const },
      strategy: { type: 'string' as const },
      'wait-timeout': { type: 'string' as const },
      detach: { type: 'boolean' as const },
    },
    async run(ctx) {
      const { flags, args, out } = ctx;
      const dir = resolve(args[0] ?? '.');
      const loaded = loadConfig(ctx, dir);
      const app = appName(flags, loaded?.config);
      const config = loaded ? resolveLocalFiles(loaded.config, loaded.dir) : ({ app } as AppConfig);
      const prebuilt = str(flags.image) ?? (flags['build-only'] ? undefined : loaded?.config.build?.image);
      if (prebuilt && flags['build-only']) throw new HangarError('USAGE', '--build-only builds the Dockerfile; it cannot be combined with --image');
      let image: string;
      if (prebuilt) image = prebuilt;
      else {
        const built = await build(ctx, app, loaded, loaded && !args[0] ? loaded.dir : dir);
        image = withImageDigest(built.image, built.digest);
        if (flags['build-only']) {
          out.result({ image: built.image, digest: built.digest, ref: image }, () => out.line(image));
          return 0;
        }
      }
      return deployImage(ctx, app, image, { ...config, app });
    },
  },
  {
    path: ['launch'],
    summary: 'Create an app from the Dockerfile in this directory and write hangar.toml',
    usage: 'launch [DIR] [--name NAME] [-o ORG] [--port PORT] [--deploy]',
    options: { name: { type: 'string' as const }, org: { type: 'string' as const, short: 'o' }, port: { type: 'string' as const }, deploy: { type: 'boolean' as const }, ...buildFlags },
    async run(ctx) {
      const { flags, args, out } = ctx;
      const dir = resolve(args[0] ?? '.');
      if (!existsSync(join(dir, 'Dockerfile'))) throw new HangarError('USAGE', `no Dockerfile in ${dir}: hangar launch turns a directory with a Dockerfile into an app`);
      for (const f of ['hangar.toml', 'fly.toml']) {
        if (existsSync(join(dir, f))) throw new HangarError('USAGE', `${f} already exists in ${dir}: the app is launched; run \`hangar deploy\``);
      }
      const name = str(flags.name) ?? basename(dir).toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^[^a-z]+/, '').replace(/-+$/, '').slice(0, 63);
      if (!name) throw new HangarError('USAGE', 'pass --name NAME: the directory name does not make a valid app name');
      const dockerfile = readFileSync(join(dir, 'Dockerfile'), 'utf8');
      const exposed = /^\s*EXPOSE\s+(\d+)/im.exec(dockerfile)?.[1];
      const port = Number(str(flags.port) ?? exposed ?? 8080);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new HangarError('USAGE', '--port takes a port number');
      await ctx.api().request('POST', '/v1/apps', { app_name: name, org_slug: str(flags.org) });
      const toml = [
        `# hangar.toml for ${name}: the same format as Fly's fly.toml (see docs/appconfig.md).`,
        `app = "${name}"`,
        'kill_signal = "SIGINT"',
        'kill_timeout = 5',
        '',
        '[build]',
        '  dockerfile = "Dockerfile"',
        '',
        '[deploy]',
        '  strategy = "rolling"',
        '',
        '[http_service]',
        `  internal_port = ${port}`,
        '  force_https = false',
        '  auto_stop_machines = "off"',
        '  auto_start_machines = true',
        '  min_machines_running = 0',
        '',
        '[[vm]]',
        '  memory = "256mb"',
        '  cpus = 1',
        '',
      ].join('\n');
      writeFileSync(join(dir, 'hangar.toml'), toml);
      out.info(`Created app ${name} and wrote ${join(dir, 'hangar.toml')} (internal port ${port}${exposed ? ', from EXPOSE' : ''})`);
      if (!flags.deploy) {
        out.result({ app: name, config: join(dir, 'hangar.toml') }, () => out.line(`Run \`hangar deploy\` in ${dir} to build and start it.`));
        return 0;
      }
      const loaded = loadConfig({ ...ctx, flags: { ...flags, config: undefined } }, dir)!;
      const built = await build(ctx, name, loaded, dir);
      return deployImage(ctx, name, withImageDigest(built.image, built.digest), loaded.config);
    },
  },
  {
    path: ['releases'],
    summary: 'List the releases of an app',
    usage: 'releases [-a APP] [--image]',
    options: { ...appOption, image: { type: 'boolean' as const }, config: { type: 'string' as const, short: 'c' } },
    async run(ctx) {
      const app = appName(ctx.flags, loadConfig(ctx, process.cwd())?.config);
      const r = await ctx.api().request<{ releases: ReleaseView[] }>('GET', `/v1/apps/${enc(app)}/releases`);
      ctx.out.result(r.releases, () =>
        ctx.out.table(
          ['VERSION', 'STATUS', 'DESCRIPTION', 'USER', 'DATE', ...(ctx.flags.image ? ['IMAGE'] : [])],
          r.releases.map((x) => [`v${x.version}`, x.status, x.description.slice(0, 60), x.user, x.created_at, ...(ctx.flags.image ? [withImageDigest(x.image, x.image_digest)] : [])]),
        ),
      );
    },
  },
  {
    path: ['releases', 'rollback'],
    aliases: [['rollback']],
    summary: "Deploy an earlier release's image and config again (default: the one before the current)",
    usage: 'releases rollback [VERSION] [-a APP] [--strategy S] [--detach]',
    options: { ...appOption, strategy: { type: 'string' as const }, detach: { type: 'boolean' as const }, 'wait-timeout': { type: 'string' as const }, config: { type: 'string' as const, short: 'c' } },
    async run(ctx) {
      const app = appName(ctx.flags, loadConfig(ctx, process.cwd())?.config);
      let version = ctx.args[0] ? Number(ctx.args[0].replace(/^v/, '')) : undefined;
      if (version === undefined) {
        const { releases } = await ctx.api().request<{ releases: ReleaseView[] }>('GET', `/v1/apps/${enc(app)}/releases`);
        const complete = releases.filter((r) => r.status === 'complete');
        version = need(complete[1]?.version, `${app} has no earlier successful release to roll back to; see \`hangar releases\``);
      }
      if (!Number.isInteger(version)) throw new HangarError('USAGE', 'VERSION is a release number such as 3 or v3');
      ctx.out.info(`Rolling ${app} back to release v${version}`);
      return deployImage(ctx, app, '', {} as AppConfig, { image: undefined, config: undefined, rollback_to: version });
    },
  },
  {
    path: ['status'],
    summary: 'Show app, image, release and machines',
    usage: 'status [-a APP]',
    options: { ...appOption, config: { type: 'string' as const, short: 'c' } },
    async run(ctx) {
      const app = appName(ctx.flags, loadConfig(ctx, process.cwd())?.config);
      const s = await ctx.api().request<{ app: string; organization: string; release: ReleaseView | null; latest_release: ReleaseView | null; image: string | null; machines: MachineSummary[] }>(
        'GET',
        `/v1/apps/${enc(app)}/status`,
      );
      ctx.out.result(s, () => {
        const o = ctx.out;
        o.line(`App:     ${s.app} (organization ${s.organization})`);
        o.line(`Image:   ${s.image ?? '(none deployed yet)'}`);
        o.line(`Release: ${s.release ? `v${s.release.version} (${s.release.strategy}, ${s.release.created_at})` : 'none'}`);
        if (s.latest_release && s.latest_release.id !== s.release?.id) {
          o.line(`Latest:  v${s.latest_release.version} ${s.latest_release.status}${s.latest_release.reason ? `: ${s.latest_release.reason.split('\n')[0]}` : ''}`);
        }
        o.line('');
        o.table(
          ['ID', 'GROUP', 'STATE', 'RELEASE', 'PORTS', 'IMAGE'],
          s.machines.map((m) => [m.id, m.group, m.state, m.release_version ? `v${m.release_version}` : '', Object.entries(m.host_ports ?? {}).map(([g, h]) => `${h}->${g}`).join(','), m.image]),
        );
      });
    },
  },
  {
    path: ['scale', 'count'],
    summary: 'Run N machines of a process group (default group "app")',
    usage: 'scale count N [-a APP] [-g GROUP]',
    options: { ...appOption, 'process-group': { type: 'string' as const, short: 'g' }, config: { type: 'string' as const, short: 'c' }, yes: { type: 'boolean' as const, short: 'y' } },
    async run(ctx) {
      const app = appName(ctx.flags, loadConfig(ctx, process.cwd())?.config);
      const count = Number(need(ctx.args[0], 'missing N: hangar scale count N'));
      if (!Number.isInteger(count) || count < 0) throw new HangarError('USAGE', 'N must be a whole number ≥ 0');
      const res = await ctx.api().raw('POST', `/v1/apps/${enc(app)}/scale`, { count, group: str(ctx.flags['process-group']) });
      const r = await readNdjson<{ group: string; machines: MachineSummary[] }>(res, (l) => ctx.out.info(l));
      ctx.out.result(r, () => ctx.out.line(`${app} group ${r.group} now has ${r.machines.length} machine(s): ${r.machines.map((m) => m.id).join(', ')}`));
    },
  },
  {
    path: ['image', 'show'],
    summary: 'Show the image each machine runs',
    usage: 'image show [-a APP]',
    options: { ...appOption, config: { type: 'string' as const, short: 'c' } },
    async run(ctx) {
      const app = appName(ctx.flags, loadConfig(ctx, process.cwd())?.config);
      const r = await ctx.api().request<{ release: { version: number; image: string; digest: string | null } | null; machines: Array<{ id: string; group: string; state: string; image: string; repository: string | null; tag: string | null; digest: string | null; release_version: string | null }> }>(
        'GET',
        `/v1/apps/${enc(app)}/images`,
      );
      ctx.out.result(r, () => {
        if (r.release) ctx.out.line(`Current release v${r.release.version}: ${r.release.image}${r.release.digest && !r.release.image.includes('@') ? `@${r.release.digest}` : ''}`);
        ctx.out.table(['MACHINE', 'GROUP', 'STATE', 'REPOSITORY', 'TAG', 'DIGEST'], r.machines.map((m) => [m.id, m.group, m.state, m.repository, m.tag, m.digest]));
      });
    },
  },
  {
    path: ['images', 'seed'],
    summary: "Make the Debian base image and serve it from Hangar's registry as docker.io/library/debian (admin)",
    usage: 'images seed [--force]',
    options: { force: { type: 'boolean' as const } },
    async run(ctx) {
      const res = await ctx.api().raw('POST', '/v1/images/seed', { force: Boolean(ctx.flags.force) });
      const r = await readNdjson<Array<{ repository: string; tags: string[]; digest: string; pushed: boolean }>>(res, (l) => ctx.out.info(l));
      ctx.out.result(r, () => {
        for (const x of r) ctx.out.line(`${x.repository}:{${x.tags.join(',')}} ${x.digest} (${x.pushed ? 'seeded now' : 'already seeded'})`);
      });
    },
  },
];
