import { parseAppConfig } from '../appconfig/index.js';
import { main, type StartedFrom } from './main.js';

/**
 * Run the CLI with `argv` (the arguments after the command name) and set the
 * exit code. The one entry for every way `hangar` starts: compiled (bin.ts),
 * bundled, and from the bundle's V8 startup snapshot (see bin/hangar).
 */
export function runCli(argv: string[], startedFrom: StartedFrom): void {
  // `hangar status | head`: a reader that goes away is not an error of ours.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw err;
    });
  }
  main(argv, startedFrom).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`Error: ${(err as Error)?.message ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

/**
 * Work done once while the startup snapshot is made, so that every command
 * run from it starts with it done: zod compiles a schema's parser the first
 * time it is used, and the app config's is the one most commands need.
 */
export function warmUpForSnapshot(): void {
  parseAppConfig(
    [
      'app = "warm-up"',
      'kill_signal = "SIGINT"',
      '[build]',
      '  dockerfile = "Dockerfile"',
      '[env]',
      '  A = "1"',
      '[deploy]',
      '  strategy = "rolling"',
      '[http_service]',
      '  internal_port = 8080',
      '  auto_start_machines = true',
      '  [[http_service.checks]]',
      '    interval = "5s"',
      '    path = "/healthz"',
      '[[vm]]',
      '  memory = "256mb"',
      '  cpus = 1',
    ].join('\n'),
  );
}
