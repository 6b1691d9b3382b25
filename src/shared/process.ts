import { spawn, type SpawnOptions } from 'node:child_process';
import { HangarError } from './errors.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run a program with an argv array (never a shell string) and collect its
 * output. Rejects with a HangarError carrying stderr when it exits non-zero,
 * unless `allowFailure` is set.
 */
export function run(
  file: string,
  args: readonly string[],
  options: SpawnOptions & { input?: string | Buffer; allowFailure?: boolean; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...options, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    if (options.timeoutMs) {
      timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    }
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      reject(
        new HangarError(
          e.code === 'ENOENT' ? 'MISSING_TOOL' : 'INTERNAL',
          e.code === 'ENOENT'
            ? `${file} is not installed; run the setup script (scripts/setup.sh) to install Hangar's dependencies`
            : `could not run ${file}: ${e.message}`,
          { status: 500, cause: e },
        ),
      );
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const result = {
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      if (result.code !== 0 && !options.allowFailure) {
        reject(
          new HangarError('COMMAND_FAILED', `${file} ${args.join(' ')} failed (exit ${result.code}${signal ? `, ${signal}` : ''}): ${result.stderr.trim().slice(-2000)}`, {
            status: 500,
            detail: result,
          }),
        );
      } else resolve(result);
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
    else child.stdin!.end();
  });
}

/**
 * A `data` listener that hands a child's output to `onLine` a line at a
 * time (CR or LF ends a line; blank lines are dropped; a line that grows
 * past 64 KiB without an end is passed on as it is).
 */
export function lineSplitter(onLine: (line: string) => void): (chunk: Buffer) => void {
  let buf = '';
  return (d) => {
    buf += d.toString('utf8');
    let i;
    while ((i = buf.search(/[\r\n]/)) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) onLine(line);
    }
    if (buf.length > 64 * 1024) {
      onLine(buf);
      buf = '';
    }
  };
}
