import { createInterface } from 'node:readline/promises';
import type { Command, CommandContext } from '../command.js';
import { appOption, resolveApp } from '../app-flag.js';
import { HangarError } from '../../shared/errors.js';

interface VolumeView {
  id: string; name: string; state: string; size_gb: number; region: string; attached_machine_id: string | null;
  created_at: string; source?: string | null; blocks?: number; blocks_free?: number; block_size?: number; pending_resize?: boolean;
}
interface SnapshotView { id: string; size: number; status: string; created_at: string; volume_id: string; expires_at: string }

const enc = encodeURIComponent;
const vpath = (app: string, id?: string, verb?: string) => `/v1/apps/${enc(app)}/volumes${id ? `/${enc(id)}` : ''}${verb ? `/${verb}` : ''}`;

function needId(args: string[], what = 'volume id'): string {
  if (!args[0]) throw new HangarError('USAGE', `missing ${what}; list them with \`hangar volumes list\``);
  return args[0];
}

function sizeFlag(flags: CommandContext['flags'], required: boolean): number | undefined {
  const raw = flags.size as string | undefined;
  if (raw === undefined) {
    if (required) throw new HangarError('USAGE', 'give the size in GB with -s, e.g. -s 10');
    return undefined;
  }
  const n = Number(String(raw).replace(/gb?$/i, ''));
  if (!Number.isInteger(n) || n < 1) throw new HangarError('USAGE', `-s takes a whole number of gigabytes, got "${raw}"`);
  return n;
}

function printVolume(ctx: CommandContext, v: VolumeView): void {
  ctx.out.result(v, () => {
    ctx.out.line(`Volume ${v.id} (${v.name})`);
    ctx.out.line(`  State:    ${v.state}`);
    ctx.out.line(`  Size:     ${v.size_gb} GB${v.pending_resize ? ' (filesystem grows at the next boot of its machine)' : ''}`);
    if (v.blocks && v.block_size) ctx.out.line(`  Used:     ${(((v.blocks - (v.blocks_free ?? 0)) * v.block_size) / 1024 ** 2).toFixed(1)} MiB`);
    ctx.out.line(`  Attached: ${v.attached_machine_id ?? '-'}`);
    if (v.source) ctx.out.line(`  Source:   ${v.source}`);
    ctx.out.line(`  Created:  ${v.created_at}`);
  });
}

async function confirm(ctx: CommandContext, question: string): Promise<boolean> {
  if (ctx.flags.yes) return true;
  if (!process.stdin.isTTY) throw new HangarError('USAGE', 'this destroys data: confirm with --yes');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

export const volumeCommands: Command[] = [
  {
    path: ['volumes', 'create'],
    aliases: [['volume', 'create'], ['vol', 'create']],
    summary: 'Create a volume (a persistent ext4 disk a machine mounts)',
    usage: 'volumes create NAME -a APP [-s GB] [--snapshot-id ID] [--snapshot-retention DAYS]',
    options: { ...appOption, size: { type: 'string', short: 's' }, 'snapshot-id': { type: 'string' }, 'snapshot-retention': { type: 'string' } },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      const name = ctx.args[0];
      if (!name) throw new HangarError('USAGE', 'missing NAME: hangar volumes create NAME -s GB');
      const retention = ctx.flags['snapshot-retention'] === undefined ? undefined : Number(ctx.flags['snapshot-retention']);
      const v = await ctx.api().request<VolumeView>('POST', vpath(app), {
        name,
        size_gb: sizeFlag(ctx.flags, false),
        snapshot_id: ctx.flags['snapshot-id'],
        snapshot_retention: retention,
      });
      printVolume(ctx, v);
    },
  },
  {
    path: ['volumes', 'list'],
    aliases: [['volumes', 'ls'], ['volume', 'list'], ['vol', 'list']],
    summary: "List an app's volumes",
    usage: 'volumes list -a APP',
    options: { ...appOption },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      const list = await ctx.api().request<VolumeView[]>('GET', vpath(app));
      ctx.out.result(list, () =>
        ctx.out.table(['ID', 'STATE', 'NAME', 'SIZE', 'REGION', 'ATTACHED VM', 'CREATED AT'], list.map((v) => [v.id, v.state, v.name, `${v.size_gb}GB`, v.region, v.attached_machine_id ?? '', v.created_at])),
      );
    },
  },
  {
    path: ['volumes', 'show'],
    aliases: [['volume', 'show'], ['vol', 'show']],
    summary: 'Show a volume',
    usage: 'volumes show ID -a APP',
    options: { ...appOption },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      printVolume(ctx, await ctx.api().request<VolumeView>('GET', vpath(app, needId(ctx.args))));
    },
  },
  {
    path: ['volumes', 'extend'],
    aliases: [['volume', 'extend'], ['vol', 'extend']],
    summary: 'Grow a volume and its filesystem to -s GB',
    usage: 'volumes extend ID -s GB -a APP',
    options: { ...appOption, size: { type: 'string', short: 's' } },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      const r = await ctx.api().request<{ volume: VolumeView; needs_restart: boolean }>('PUT', vpath(app, needId(ctx.args), 'extend'), { size_gb: sizeFlag(ctx.flags, true) });
      ctx.out.result(r, () => {
        printVolume(ctx, r.volume);
        if (r.needs_restart) ctx.out.line(`Its machine is running: restart it (hangar machine restart ${r.volume.attached_machine_id} -a ${app}) to use the new space.`);
      });
    },
  },
  {
    path: ['volumes', 'destroy'],
    aliases: [['volumes', 'delete'], ['volumes', 'rm'], ['volume', 'destroy'], ['vol', 'destroy']],
    summary: 'Destroy a volume and its data (refused while a machine holds it)',
    usage: 'volumes destroy ID -a APP [--yes]',
    options: { ...appOption, yes: { type: 'boolean', short: 'y' } },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      const id = needId(ctx.args);
      if (!(await confirm(ctx, `Destroy volume ${id} and all its data?`))) return 1;
      const v = await ctx.api().request<VolumeView>('DELETE', vpath(app, id));
      ctx.out.result(v, () => ctx.out.line(`Destroyed volume ${v.id} (${v.name})`));
    },
  },
  {
    path: ['volumes', 'fork'],
    aliases: [['volume', 'fork'], ['vol', 'fork']],
    summary: 'Create a new volume with a copy of an existing one',
    usage: 'volumes fork ID -a APP [--name NAME] [-s GB]',
    options: { ...appOption, name: { type: 'string' }, size: { type: 'string', short: 's' } },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      const id = needId(ctx.args);
      const api = ctx.api();
      const src = await api.request<VolumeView>('GET', vpath(app, id));
      const v = await api.request<VolumeView>('POST', vpath(app), { name: ctx.flags.name ?? src.name, source_volume_id: src.id, size_gb: sizeFlag(ctx.flags, false) });
      printVolume(ctx, v);
    },
  },
  {
    path: ['volumes', 'snapshots', 'create'],
    aliases: [['volume', 'snapshots', 'create'], ['vol', 'snapshots', 'create']],
    summary: 'Take a snapshot (point-in-time copy) of a volume',
    usage: 'volumes snapshots create VOLUME_ID -a APP',
    options: { ...appOption },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      const s = await ctx.api().request<SnapshotView>('POST', vpath(app, needId(ctx.args), 'snapshots'));
      ctx.out.result(s, () => ctx.out.line(`Created snapshot ${s.id} of ${s.volume_id} (${(s.size / 1024 ** 2).toFixed(1)} MiB, kept until ${s.expires_at})`));
    },
  },
  {
    path: ['volumes', 'snapshots', 'list'],
    aliases: [['volumes', 'snapshots', 'ls'], ['volume', 'snapshots', 'list'], ['vol', 'snapshots', 'list']],
    summary: "List a volume's snapshots",
    usage: 'volumes snapshots list VOLUME_ID -a APP',
    options: { ...appOption },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      const list = await ctx.api().request<SnapshotView[]>('GET', vpath(app, needId(ctx.args), 'snapshots'));
      ctx.out.result(list, () => ctx.out.table(['ID', 'STATUS', 'SIZE', 'CREATED AT', 'EXPIRES AT'], list.map((s) => [s.id, s.status, s.size, s.created_at, s.expires_at])));
    },
  },
];
