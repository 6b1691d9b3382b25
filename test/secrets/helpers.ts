import { hangar, type CliResult } from '../helpers/cli.js';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Every file under `dir` whose bytes contain `needle` (the whole tree, no exceptions). */
export function filesContaining(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const want = Buffer.from(needle);
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && statSync(p).size > 0 && readFileSync(p).includes(want)) hits.push(p);
    }
  };
  walk(dir);
  return hits;
}

/** Run the real CLI against a daemon, isolated from the caller's own Hangar settings. */
export function runCli(args: string[], env: Record<string, string>, stdin?: string): Promise<CliResult> {
  const isolated = { HANGAR_CONFIG_DIR: '/nonexistent-hangar-config', HANGAR_API_URL: undefined, HANGAR_ACCESS_TOKEN: undefined, HANGAR_APP: undefined };
  return hangar(args, { ...isolated, ...env }, stdin);
}
