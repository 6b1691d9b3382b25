import type { Command, CommandContext } from '../command.js';
import { appOption, resolveApp } from '../app-flag.js';
import { HangarError } from '../../shared/errors.js';

interface MachineView {
  id: string;
  name: string;
  state: string;
  config: Record<string, any>;
  image_ref: { repository: string; tag: string; digest: string } | null;
  host_ports: Record<string, number>;
  created_at: string;
  updated_at: string;
  reason?: string;
}

const enc = encodeURIComponent;
const mpath = (app: string, id?: string, verb?: string) =>
  `/v1/apps/${enc(app)}/machines${id ? `/${enc(id)}` : ''}${verb ? `/${verb}` : ''}`;

function needId(args: string[]): string {
  if (!args[0]) throw new HangarError('USAGE', 'missing machine id; list them with `hangar machine list`');
  return args[0];
}

function parseEnv(list: string[] | undefined): Record<string, string> | undefined {
  if (!list?.length) return undefined;
  const env: Record<string, string> = {};
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new HangarError('USAGE', `-e takes NAME=VALUE, got "${kv}"`);
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

/** `-p 8080` or `-p 80:8080/tcp` (Fly: public:internal). */
function parsePorts(list: string[] | undefined) {
  if (!list?.length) return undefined;
  return list.map((p) => {
    const m = /^(?:(\d+):)?(\d+)(?:\/(tcp|udp))?$/.exec(p);
    if (!m) throw new HangarError('USAGE', `-p takes PORT, or PUBLIC:INTERNAL[/tcp], got "${p}"`);
    const internal = Number(m[2]);
    return { protocol: (m[3] ?? 'tcp') as 'tcp' | 'udp', internal_port: internal, ports: [{ port: Number(m[1] ?? internal) }] };
  });
}

function printMachine(ctx: CommandContext, m: MachineView): void {
  ctx.out.result(m, () => {
    ctx.out.line(`Machine ${m.id} (${m.name})`);
    ctx.out.line(`  State:   ${m.state}${m.reason ? ` (${m.reason})` : ''}`);
    ctx.out.line(`  Image:   ${m.config.image}${m.image_ref ? ` (${m.image_ref.digest.slice(0, 19)})` : ''}`);
    const ports = Object.entries(m.host_ports ?? {});
    if (ports.length) ctx.out.line(`  Ports:   ${ports.map(([g, h]) => `127.0.0.1:${h} -> ${g}`).join(', ')}`);
    ctx.out.line(`  Created: ${m.created_at}`);
  });
}

const configFlags = {
  env: { type: 'string' as const, short: 'e', multiple: true },
  entrypoint: { type: 'string' as const },
  port: { type: 'string' as const, short: 'p', multiple: true },
  restart: { type: 'string' as const },
  memory: { type: 'string' as const },
  cpus: { type: 'string' as const },
  name: { type: 'string' as const, short: 'n' },
  rm: { type: 'boolean' as const },
  detach: { type: 'boolean' as const, short: 'd' },
  'skip-start': { type: 'boolean' as const },
};

function guestFrom(flags: CommandContext['flags']) {
  if (!flags.memory && !flags.cpus) return undefined;
  const memory = flags.memory ? Number(String(flags.memory).replace(/mb$/i, '')) : 256;
  const cpus = flags.cpus ? Number(flags.cpus) : 1;
  if (!Number.isInteger(memory) || !Number.isInteger(cpus)) throw new HangarError('USAGE', '--memory takes megabytes (e.g. 512) and --cpus a whole number');
  return { cpus, memory_mb: memory };
}

export const machineCommands: Command[] = [
  {
    path: ['machine', 'run'],
    aliases: [['machines', 'run'], ['m', 'run']],
    summary: 'Create and start a machine from an image',
    usage: 'machine run IMAGE [CMD...] -a APP [-e K=V] [-p PORT] [--rm] [--restart POLICY]',
    options: { ...appOption, ...configFlags },
    passThroughAfterPositionals: 1,
    async run(ctx) {
      const { args, flags } = ctx;
      const app = resolveApp(flags);
      const image = args[0];
      if (!image) throw new HangarError('USAGE', 'missing IMAGE: hangar machine run IMAGE [CMD...]');
      const restart = flags.restart as string | undefined;
      if (restart && !['no', 'always', 'on-failure'].includes(restart)) {
        throw new HangarError('USAGE', '--restart takes no, always or on-failure');
      }
      const config: Record<string, unknown> = {
        image,
        env: parseEnv(flags.env as string[] | undefined),
        services: parsePorts(flags.port as string[] | undefined),
        guest: guestFrom(flags),
        auto_destroy: flags.rm ? true : undefined,
        restart: restart ? { policy: restart } : flags.rm ? { policy: 'no' } : undefined,
        init: {
          ...(args.length > 1 ? { cmd: args.slice(1) } : {}),
          ...(flags.entrypoint ? { entrypoint: String(flags.entrypoint).split(' ').filter(Boolean) } : {}),
        },
      };
      const api = ctx.api();
      const m = await api.request<MachineView>('POST', mpath(app), {
        name: flags.name,
        config,
        skip_launch: Boolean(flags['skip-start']),
      });
      if (!flags.detach && !flags['skip-start']) {
        ctx.out.info(`Machine ${m.id} is booting...`);
        await api.request('GET', `${mpath(app, m.id, 'wait')}?state=started&timeout=120`).catch(() => undefined);
      }
      printMachine(ctx, await api.request<MachineView>('GET', mpath(app, m.id)));
    },
  },
  {
    path: ['machine', 'list'],
    aliases: [['machines', 'list'], ['machine', 'ls'], ['m', 'list']],
    summary: "List an app's machines",
    usage: 'machine list -a APP',
    options: { ...appOption },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      const list = await ctx.api().request<MachineView[]>('GET', mpath(app));
      ctx.out.result(list, () =>
        ctx.out.table(
          ['ID', 'NAME', 'STATE', 'IMAGE', 'PORTS', 'UPDATED'],
          list.map((m) => [
            m.id,
            m.name,
            m.state,
            m.config.image,
            Object.entries(m.host_ports ?? {}).map(([g, h]) => `${h}->${g}`).join(','),
            m.updated_at,
          ]),
        ),
      );
    },
  },
  {
    path: ['machine', 'status'],
    aliases: [['machine', 'show']],
    summary: 'Show a machine and its recent events',
    usage: 'machine status ID -a APP',
    options: { ...appOption },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      const id = needId(ctx.args);
      const api = ctx.api();
      const m = await api.request<MachineView>('GET', mpath(app, id));
      const events = await api.request<Array<{ type: string; status: string; timestamp: number; source: string; request?: unknown }>>('GET', mpath(app, id, 'events'));
      ctx.out.result({ ...m, events }, () => {
        printMachine(ctx, m);
        ctx.out.line('');
        ctx.out.table(
          ['TIMESTAMP', 'TYPE', 'STATUS', 'SOURCE', 'DETAIL'],
          events.slice(0, 10).map((e) => [new Date(e.timestamp).toISOString(), e.type, e.status, e.source, e.request ? JSON.stringify(e.request) : '']),
        );
      });
    },
  },
  ...(['start', 'stop', 'restart'] as const).map(
    (verb): Command => ({
      path: ['machine', verb],
      summary: `${verb[0]!.toUpperCase()}${verb.slice(1)} a machine`,
      usage: `machine ${verb} ID -a APP${verb === 'start' ? '' : ' [--signal SIG] [--timeout 10s]'}`,
      options: { ...appOption, ...(verb === 'start' ? {} : { signal: { type: 'string' as const, short: 's' }, timeout: { type: 'string' as const } }) },
      async run(ctx) {
        const app = resolveApp(ctx.flags);
        const id = needId(ctx.args);
        const api = ctx.api();
        if (verb === 'stop') {
          await api.request('POST', mpath(app, id, 'stop'), { signal: ctx.flags.signal, timeout: ctx.flags.timeout });
        } else if (verb === 'restart') {
          const q = new URLSearchParams();
          if (ctx.flags.signal) q.set('signal', String(ctx.flags.signal));
          if (ctx.flags.timeout) q.set('timeout', String(ctx.flags.timeout));
          await api.request('POST', `${mpath(app, id, 'restart')}?${q}`);
        } else {
          await api.request('POST', mpath(app, id, 'start'));
          await api.request('GET', `${mpath(app, id, 'wait')}?state=started&timeout=120`).catch(() => undefined);
        }
        const m = await api.request<MachineView>('GET', mpath(app, id));
        ctx.out.result(m, () => ctx.out.line(`Machine ${m.id} is ${m.state}`));
      },
    }),
  ),
  {
    path: ['machine', 'destroy'],
    aliases: [['machine', 'rm'], ['machine', 'remove']],
    summary: 'Destroy a machine (--force kills a running one)',
    usage: 'machine destroy ID -a APP [--force]',
    options: { ...appOption, force: { type: 'boolean', short: 'f' } },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      const id = needId(ctx.args);
      await ctx.api().request('DELETE', `${mpath(app, id)}${ctx.flags.force ? '?force=true' : ''}`);
      ctx.out.result({ destroyed: id }, () => ctx.out.line(`Machine ${id} destroyed`));
    },
  },
  {
    path: ['machine', 'exec'],
    summary: 'Run a command in a started machine',
    usage: 'machine exec ID -a APP [--timeout S] -- CMD [ARGS...]',
    options: { ...appOption, timeout: { type: 'string' } },
    passThroughAfterPositionals: 1,
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      const id = needId(ctx.args);
      let command = ctx.args.slice(1);
      if (command.length === 1 && command[0]!.includes(' ')) command = ['/bin/sh', '-c', command[0]!];
      if (!command.length) throw new HangarError('USAGE', 'missing command: hangar machine exec ID -- CMD [ARGS...]');
      const timeout = ctx.flags.timeout ? Number(ctx.flags.timeout) : undefined;
      const res = await ctx.api().request<{ exit_code: number; stdout: string; stderr: string }>('POST', mpath(app, id, 'exec'), { command, timeout });
      ctx.out.result(res, () => {
        process.stdout.write(res.stdout);
        process.stderr.write(res.stderr);
      });
      return res.exit_code;
    },
  },
  {
    path: ['machine', 'update'],
    summary: "Change a machine's config (image, env, size) and restart it",
    usage: 'machine update ID -a APP [--image REF] [-e K=V] [--memory MB] [--cpus N] [--command CMD]',
    options: { ...appOption, image: { type: 'string' }, env: configFlags.env, memory: configFlags.memory, cpus: configFlags.cpus, command: { type: 'string' }, restart: configFlags.restart },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      const id = needId(ctx.args);
      const api = ctx.api();
      const cur = await api.request<MachineView>('GET', mpath(app, id));
      const config = { ...cur.config };
      if (ctx.flags.image) config.image = ctx.flags.image;
      const env = parseEnv(ctx.flags.env as string[] | undefined);
      if (env) config.env = { ...(config.env ?? {}), ...env };
      const guest = guestFrom(ctx.flags);
      if (guest) config.guest = { ...(config.guest ?? {}), ...guest };
      if (ctx.flags.command) config.init = { ...(config.init ?? {}), cmd: String(ctx.flags.command).split(' ').filter(Boolean) };
      if (ctx.flags.restart) config.restart = { policy: ctx.flags.restart };
      const m = await api.request<MachineView>('POST', mpath(app, id), { config });
      printMachine(ctx, m);
    },
  },
];
