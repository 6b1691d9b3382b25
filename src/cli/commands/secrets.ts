import type { Command, CommandContext } from '../command.js';
import { appOption, resolveApp } from '../app-flag.js';
import { HangarError } from '../../shared/errors.js';

interface SecretEntry { name: string; digest: string; status: string; created_at: string; updated_at: string }
interface UpdateResult { secrets: SecretEntry[]; version: number; staged: boolean; restarted: string[]; failed: { id: string; error: string }[] }

const spath = (app: string) => `/v1/apps/${encodeURIComponent(app)}/secrets`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * NAME=VALUE lines (flyctl's import format): blank lines and # comments are
 * skipped; a value opened with """ runs until a line ending in """.
 */
export function parseSecretLines(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.trim() || line.trimStart().startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new HangarError('USAGE', `line ${i + 1}: expected NAME=VALUE`);
    const name = line.slice(0, eq).trim();
    let value = line.slice(eq + 1);
    if (value.startsWith('"""')) {
      const parts = [value.slice(3)];
      while (!parts[parts.length - 1]!.endsWith('"""')) {
        if (++i >= lines.length) throw new HangarError('USAGE', `secret ${name}: the """ value is not closed`);
        parts.push(lines[i]!);
      }
      value = parts.join('\n').slice(0, -3);
    }
    out[name] = value;
  }
  return out;
}

function parseAssignments(args: string[], stdinValue: () => Promise<string>): Promise<Record<string, string>> {
  return (async () => {
    const out: Record<string, string> = {};
    for (const a of args) {
      const eq = a.indexOf('=');
      if (eq <= 0) throw new HangarError('USAGE', `expected NAME=VALUE, got "${a.includes('=') ? a.slice(0, a.indexOf('=') + 1) + '...' : a}"`);
      const name = a.slice(0, eq);
      let value = a.slice(eq + 1);
      // NAME=- reads the value from stdin, so it stays out of shell history.
      if (value === '-') value = (await stdinValue()).replace(/\r?\n$/, '');
      out[name] = value;
    }
    return out;
  })();
}

async function apply(ctx: CommandContext, app: string, values: Record<string, string | null>, stage: boolean): Promise<void> {
  const r = await ctx.api().request<UpdateResult>('POST', spath(app), { values, stage });
  ctx.out.result(r, () => report(ctx, app, r));
  if (r.failed.length) throw new HangarError('RESTART_FAILED', `the secrets are saved, but ${r.failed.length} machine(s) did not restart: ${r.failed.map((f) => `${f.id}: ${f.error}`).join('; ')}. Retry with \`hangar secrets deploy -a ${app}\``);
}

function report(ctx: CommandContext, app: string, r: UpdateResult): void {
  if (r.staged) ctx.out.line(`Secrets are staged; they reach machines when they next boot. Run \`hangar secrets deploy -a ${app}\` to restart the running ones now.`);
  else if (r.restarted.length) ctx.out.line(`Restarted ${r.restarted.length} machine(s) with the new secrets: ${r.restarted.join(', ')}`);
  else ctx.out.line('Secrets updated; no machine was running, so they apply at the next boot.');
}

export const secretCommands: Command[] = [
  {
    path: ['secrets', 'set'],
    summary: 'Set secrets (NAME=VALUE; NAME=- reads the value from stdin); restarts machines unless --stage',
    usage: 'secrets set NAME=VALUE... -a APP [--stage]',
    options: { ...appOption, stage: { type: 'boolean' } },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      let stdinUsed = false;
      const values = ctx.args.length
        ? await parseAssignments(ctx.args, async () => {
            if (stdinUsed) throw new HangarError('USAGE', 'only one NAME=- can read stdin');
            stdinUsed = true;
            return readStdin();
          })
        : !process.stdin.isTTY
          ? parseSecretLines(await readStdin())
          : undefined;
      if (!values || !Object.keys(values).length) throw new HangarError('USAGE', 'give at least one NAME=VALUE (or pipe NAME=VALUE lines on stdin)');
      await apply(ctx, app, values, Boolean(ctx.flags.stage));
    },
  },
  {
    path: ['secrets', 'unset'],
    summary: 'Remove secrets; restarts machines unless --stage',
    usage: 'secrets unset NAME... -a APP [--stage]',
    options: { ...appOption, stage: { type: 'boolean' } },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      if (!ctx.args.length) throw new HangarError('USAGE', 'give the names of the secrets to remove');
      const current = await ctx.api().request<{ secrets: SecretEntry[] }>('GET', spath(app));
      const missing = ctx.args.filter((n) => !current.secrets.some((s) => s.name === n));
      if (missing.length) throw new HangarError('NOT_FOUND', `not set on app ${app}: ${missing.join(', ')}; see \`hangar secrets list -a ${app}\``);
      await apply(ctx, app, Object.fromEntries(ctx.args.map((n) => [n, null])), Boolean(ctx.flags.stage));
    },
  },
  {
    path: ['secrets', 'list'],
    aliases: [['secrets', 'ls']],
    summary: "List an app's secrets: names, digests and dates, never values",
    usage: 'secrets list -a APP',
    options: { ...appOption },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      const r = await ctx.api().request<{ secrets: SecretEntry[]; version: number }>('GET', spath(app));
      ctx.out.result(r, () => ctx.out.table(['NAME', 'DIGEST', 'STATUS', 'CREATED AT', 'UPDATED AT'], r.secrets.map((s) => [s.name, s.digest, s.status, s.created_at, s.updated_at])));
    },
  },
  {
    path: ['secrets', 'import'],
    summary: 'Set secrets from NAME=VALUE lines on stdin; restarts machines unless --stage',
    usage: 'secrets import -a APP [--stage] < FILE',
    options: { ...appOption, stage: { type: 'boolean' } },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      if (process.stdin.isTTY) ctx.out.info('Reading NAME=VALUE lines; end with Ctrl-D');
      const values = parseSecretLines(await readStdin());
      if (!Object.keys(values).length) throw new HangarError('USAGE', 'no NAME=VALUE lines on stdin');
      await apply(ctx, app, values, Boolean(ctx.flags.stage));
    },
  },
  {
    path: ['secrets', 'deploy'],
    summary: 'Roll out staged secrets: restart the running machines',
    usage: 'secrets deploy -a APP',
    options: { ...appOption },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      await apply(ctx, app, {}, false);
    },
  },
];
