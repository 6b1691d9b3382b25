import { parseArgs } from 'node:util';
import { HangarError } from '../shared/errors.js';
import type { Command, OptionSpec } from './command.js';
import { ApiClient } from './client.js';
import { Output } from './output.js';
import { allCommands } from './commands/index.js';

const globalOptions: OptionSpec = {
  json: { type: 'boolean', short: 'j' },
  help: { type: 'boolean', short: 'h' },
};

function findCommand(argv: string[]): { command: Command; rest: string[] } | undefined {
  let best: { command: Command; rest: string[]; len: number } | undefined;
  for (const command of allCommands) {
    for (const path of [command.path, ...(command.aliases ?? [])]) {
      if (path.length <= argv.length && path.every((p, i) => argv[i] === p) && (!best || path.length > best.len)) {
        best = { command, rest: argv.slice(path.length), len: path.length };
      }
    }
  }
  return best;
}

export function helpText(prefix: string[] = []): string {
  const cmds = allCommands.filter((c) => prefix.every((p, i) => c.path[i] === p));
  const lines = [
    'Hangar: build Docker images, keep them in a private registry, run them as microVMs.',
    '',
    'Usage: hangar <command> [flags]',
    '',
    'Commands:',
    // Long usages get their summary on the next line, so columns stay readable.
    ...cmds.map((c) => (c.usage.length > 50 ? `  ${c.usage}\n  ${''.padEnd(52)} ${c.summary}` : `  ${c.usage.padEnd(52)} ${c.summary}`)),
    '',
    'Global flags: --json (print only JSON), --help',
    'Environment: HANGAR_API_URL (default http://127.0.0.1:4280), HANGAR_ACCESS_TOKEN, HANGAR_DATA_DIR, NO_COLOR',
  ];
  return lines.join('\n');
}

function commandHelp(command: Command): string {
  const opts = Object.entries(command.options ?? {}).map(
    ([name, o]) => `  ${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ' VALUE' : ''}${o.multiple ? ' (repeatable)' : ''}`,
  );
  return [`Usage: hangar ${command.usage}`, '', command.summary, ...(opts.length ? ['', 'Flags:', ...opts] : [])].join('\n');
}

/** How this process loaded the CLI (bin/hangar picks the fastest that is up to date); `hangar version` says it. */
export type StartedFrom = 'snapshot' | 'bundle' | 'compiled';

const startedFromText: Record<StartedFrom, string> = {
  snapshot: 'from its startup snapshot',
  bundle: 'from its bundle (`node bin/hangar`, or the startup snapshot is missing or older than the build)',
  compiled: 'from dist/ as compiled (the bundle is missing or older than the build: `npm run build` makes both)',
};

export async function main(argv: string[], startedFrom: StartedFrom = 'compiled'): Promise<number> {
  const wantsJson = argv.includes('--json') || argv.includes('-j');
  const out = new Output(wantsJson);
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    const rest = argv.slice(1).filter((a) => !a.startsWith('-'));
    const found = rest.length ? findCommand(rest) : undefined;
    out.line(found && found.rest.length === 0 ? commandHelp(found.command) : helpText(rest));
    return 0;
  }
  if (argv[0] === 'version' || argv[0] === '--version') {
    out.result({ version: '0.1.0', node: process.version, started_from: startedFrom }, () => out.line(`hangar 0.1.0 (Node ${process.version}; CLI started ${startedFromText[startedFrom]})`));
    return 0;
  }
  const found = findCommand(argv);
  if (!found) {
    const group = allCommands.filter((c) => c.path[0] === argv[0]);
    if (group.length) {
      out.error(`unknown command "hangar ${argv.slice(0, 2).join(' ')}"`);
      out.line(helpText([argv[0]!]));
    } else out.error(`unknown command "${argv[0]}"; run \`hangar help\` to see them all`);
    return 2;
  }
  const { command, rest } = found;
  let parsed;
  try {
    let tokens = rest;
    let passthrough: string[] = [];
    if (command.passThroughAfterPositionals !== undefined) {
      // Everything after the Nth positional belongs to the app (e.g. its CMD).
      ({ tokens, passthrough } = splitPassthrough(rest, command));
    }
    parsed = parseArgs({ args: tokens, options: { ...globalOptions, ...(command.options ?? {}) }, allowPositionals: true, strict: true });
    parsed.positionals.push(...passthrough);
  } catch (err) {
    out.error(`${(err as Error).message.replace(/\. To specify.*$/s, '')}\n\n${commandHelp(command)}`);
    return 2;
  }
  if (parsed.values.help) {
    out.line(commandHelp(command));
    return 0;
  }
  let client: ApiClient | undefined;
  try {
    const code = await command.run({
      args: parsed.positionals,
      flags: parsed.values as Record<string, string | boolean | string[] | undefined>,
      out,
      api: () => (client ??= new ApiClient()),
    });
    return code ?? 0;
  } catch (err) {
    if (err instanceof HangarError) {
      out.error(err.message);
      return err.code === 'BAD_REQUEST' || err.code === 'USAGE' ? 2 : 1;
    }
    out.error(`unexpected failure: ${(err as Error)?.message ?? String(err)}${process.env.HANGAR_DEBUG ? '\n' + (err as Error)?.stack : ' (set HANGAR_DEBUG=1 for details)'}`);
    return 1;
  }
}

function splitPassthrough(rest: string[], command: Command): { tokens: string[]; passthrough: string[] } {
  // Flags may appear anywhere before the app's command; the command starts at
  // the first positional after the Nth (or after `--`): `machine run IMAGE
  // -e K=V CMD -x` keeps `-x` for CMD.
  const n = command.passThroughAfterPositionals!;
  const opts = command.options ?? {};
  let seen = 0;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--') return { tokens: rest.slice(0, i), passthrough: rest.slice(i + 1) };
    if (a.startsWith('-') && a !== '-') {
      const name = a.replace(/^--?/, '').split('=')[0]!;
      const spec = opts[name] ?? Object.values(opts).find((o) => o.short === name);
      if (spec?.type === 'string' && !a.includes('=')) i++;
      continue;
    }
    if (seen === n) return { tokens: rest.slice(0, i), passthrough: rest.slice(i) };
    seen++;
  }
  return { tokens: rest, passthrough: [] };
}
