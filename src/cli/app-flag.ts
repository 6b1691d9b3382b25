import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'smol-toml';
import { HangarError } from '../shared/errors.js';

/** `-a APP`, else HANGAR_APP, else `app` from ./hangar.toml or ./fly.toml (like flyctl). */
export function resolveApp(flags: Record<string, unknown>): string {
  const flag = flags.app as string | undefined;
  if (flag) return flag;
  if (process.env.HANGAR_APP) return process.env.HANGAR_APP;
  for (const file of ['hangar.toml', 'fly.toml']) {
    if (!existsSync(file)) continue;
    try {
      const app = (parse(readFileSync(file, 'utf8')) as { app?: unknown }).app;
      if (typeof app === 'string' && app) return app;
    } catch {
      /* an unreadable config is reported by the commands that need it */
    }
  }
  throw new HangarError('USAGE', 'which app? pass -a APP, or run in a directory with a hangar.toml or fly.toml');
}

export const appOption = { app: { type: 'string' as const, short: 'a' } };
