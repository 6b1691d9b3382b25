import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { HangarError } from '../shared/errors.js';
import { parseInput } from '../shared/validate.js';
import { appConfigSchema, type AppConfig } from './schema.js';
import { classifyKeys, type KeyReport } from './keys.js';

export const CONFIG_FILES = ['hangar.toml', 'fly.toml'] as const;

export interface LoadedAppConfig {
  /** Absolute path of the file read. */
  path: string;
  /** Its directory: relative paths in the config (dockerfile, local_path) start here. */
  dir: string;
  config: AppConfig;
  report: KeyReport;
}

/** hangar.toml wins over fly.toml in the same directory (like flyctl's -c default). */
export function findConfigFile(dir: string): string | undefined {
  for (const f of CONFIG_FILES) {
    const p = join(dir, f);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Parse config text; `file` names it in messages. */
export function parseAppConfig(text: string, file = 'hangar.toml'): { config: AppConfig; report: KeyReport } {
  let raw: Record<string, unknown>;
  try {
    raw = parse(text) as Record<string, unknown>;
  } catch (err) {
    const where = err instanceof TomlError ? ` at line ${err.line}, column ${err.column}` : '';
    const msg = (err as Error).message.split('\n')[0];
    throw new HangarError('BAD_CONFIG', `${file} is not valid TOML${where}: ${msg}`, { status: 400 });
  }
  const report = classifyKeys(raw);
  try {
    return { config: parseInput(appConfigSchema, raw, file), report };
  } catch (err) {
    if (err instanceof HangarError) throw new HangarError('BAD_CONFIG', err.message.replace(/^invalid /, 'invalid value in '), { status: 400, detail: err.detail });
    throw err;
  }
}

/** Load hangar.toml/fly.toml from a file path or a directory. Undefined when a directory has neither. */
export function loadAppConfig(pathOrDir: string): LoadedAppConfig | undefined {
  const abs = resolve(pathOrDir);
  let path: string | undefined = abs;
  if (existsSync(abs) && statSync(abs).isDirectory()) path = findConfigFile(abs);
  else if (!existsSync(abs)) throw new HangarError('BAD_CONFIG', `config file ${pathOrDir} does not exist`, { status: 400 });
  if (!path) return undefined;
  const file = path.split('/').pop()!;
  const { config, report } = parseAppConfig(readFileSync(path, 'utf8'), file);
  return { path, dir: dirname(path), config, report };
}

/** One line per key, for the CLI to print once. */
export function describeKeyReport(r: KeyReport, file: string): string[] {
  const out: string[] = [];
  if (r.ignored.length) out.push(`${file}: Hangar does not use these Fly keys yet, ignoring them: ${r.ignored.join(', ')}`);
  if (r.unknown.length) out.push(`${file}: unknown keys (typo?), ignoring them: ${r.unknown.join(', ')}`);
  return out;
}
