import { mkdirSync, readFileSync, renameSync, writeFileSync, chmodSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { HangarError } from '../shared/errors.js';

export interface DockerConfigOptions {
  /** host:port of the registry as clients will name it, e.g. 127.0.0.1:4280. */
  host: string;
  /** A Hangar API token; docker sends it as the Basic password. */
  token: string;
  /** Where config.json lives (default $DOCKER_CONFIG, else ~/.docker). */
  dockerConfigDir?: string;
  /** Home directory for the containers drop-in (default the user's). */
  home?: string;
  /** Also write ~/.config/containers/registries.conf.d/50-hangar-<host>.conf marking the registry insecure (plain HTTP). Default true. */
  containersDropIn?: boolean;
}

export interface DockerConfigResult {
  configPath: string;
  registriesConfPath?: string;
}

/**
 * `hangar auth docker`: store credentials for the registry in Docker's
 * config.json (merged, other entries kept, 0600), the file docker uses and
 * skopeo, buildah and podman fall back to. Plain HTTP is fine for docker on
 * 127.0.0.0/8; the containers tools need the registry marked insecure, which
 * the drop-in does for this user.
 */
export function writeDockerConfig(opts: DockerConfigOptions): DockerConfigResult {
  if (!/^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9a-fA-F:]+\](:\d+)?$/.test(opts.host)) {
    throw new HangarError('BAD_REQUEST', `invalid registry host "${opts.host}": use HOST:PORT, e.g. 127.0.0.1:4280`);
  }
  const home = opts.home ?? homedir();
  const dir = opts.dockerConfigDir ?? process.env.DOCKER_CONFIG ?? join(home, '.docker');
  const configPath = join(dir, 'config.json');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  let config: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(readFileSync(configPath, 'utf8')) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) config = parsed as Record<string, unknown>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new HangarError('BAD_REQUEST', `${configPath} is not valid JSON; fix or move it, then run \`hangar auth docker\` again`);
    }
  }
  const auths = (config.auths && typeof config.auths === 'object' ? config.auths : {}) as Record<string, Record<string, unknown>>;
  auths[opts.host] = { ...(auths[opts.host] ?? {}), auth: Buffer.from(`hangar:${opts.token}`).toString('base64') };
  config.auths = auths;
  // A credential helper for this host would shadow the inline auth entry.
  if (config.credHelpers && typeof config.credHelpers === 'object') delete (config.credHelpers as Record<string, unknown>)[opts.host];
  atomicWrite(configPath, JSON.stringify(config, null, 2) + '\n');

  let registriesConfPath: string | undefined;
  if (opts.containersDropIn ?? true) {
    registriesConfPath = join(home, '.config', 'containers', 'registries.conf.d', `50-hangar-${opts.host.replace(/[^A-Za-z0-9.-]/g, '_')}.conf`);
    mkdirSync(dirname(registriesConfPath), { recursive: true, mode: 0o700 });
    atomicWrite(
      registriesConfPath,
      `# Written by \`hangar auth docker\`: Hangar's registry speaks plain HTTP on this address.\n[[registry]]\nlocation = "${opts.host}"\ninsecure = true\n`,
    );
  }
  return { configPath, registriesConfPath };
}

function atomicWrite(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}
