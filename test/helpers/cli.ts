import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';

/** The repository root (tests run from dist/test/...). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const hangarBin = join(repoRoot, 'bin', 'hangar');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the real `hangar` CLI as a child process, started as a user's shell would (bin/hangar picks snapshot, bundle or dist/). */
export function hangar(args: string[], env: Record<string, string | undefined> = {}, input?: string, cwd?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(hangarBin, args, {
      env: { ...process.env, NO_COLOR: '1', ...env },
      cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}
