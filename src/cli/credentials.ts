import { mkdirSync, readFileSync, writeFileSync, rmSync, chmodSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where `hangar auth login` keeps the API URL and token (mode 0600). */
export function configDir(): string {
  return process.env.HANGAR_CONFIG_DIR ?? join(homedir(), '.hangar');
}

export interface StoredCredentials {
  api_url?: string;
  access_token?: string;
}

const file = () => join(configDir(), 'config.json');

export function readCredentials(): StoredCredentials {
  try {
    return JSON.parse(readFileSync(file(), 'utf8')) as StoredCredentials;
  } catch {
    return {};
  }
}

export function writeCredentials(creds: StoredCredentials): string {
  mkdirSync(configDir(), { recursive: true, mode: 0o700 });
  writeFileSync(file(), JSON.stringify(creds, null, 2) + '\n', { mode: 0o600 });
  chmodSync(file(), 0o600); // the file may predate us with looser bits
  return file();
}

export function clearCredentials(): void {
  rmSync(file(), { force: true });
}

export function apiUrl(): string {
  return (process.env.HANGAR_API_URL ?? readCredentials().api_url ?? 'http://127.0.0.1:4280').replace(/\/+$/, '');
}

export function accessToken(): string | undefined {
  return process.env.HANGAR_ACCESS_TOKEN || readCredentials().access_token;
}
