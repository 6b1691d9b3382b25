import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hangarBin } from './cli.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface ChildDaemon {
  child: ChildProcess;
  url: string;
  adminToken: string;
  stderr: () => string;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** SIGKILL: no chance to clean up (what a crash or OOM kill does). */
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

/** Run `hangar daemon` as a real child process (for crash and restart tests). */
export async function startChildDaemon(dataDir: string, port?: number): Promise<ChildDaemon> {
  const p = port ?? (await freePort());
  const url = `http://127.0.0.1:${p}`;
  let err = '';
  const child = spawn(process.execPath, [hangarBin, 'daemon', '--data-dir', dataDir, '--listen', `127.0.0.1:${p}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, HANGAR_PROXY_LISTEN: '127.0.0.1:0' },
  });
  // Keep the daemon's log in its data dir too, for post-mortems of a failed test.
  child.stderr!.on('data', (d) => {
    err += d;
    appendFileSync(join(dataDir, 'daemon.log'), d);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await fetch(url + '/v1/apps');
      break;
    } catch {
      if (child.exitCode !== null) throw new Error(`daemon exited early: ${err}`);
      if (Date.now() > deadline) throw new Error(`daemon did not come up: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  return {
    child,
    url,
    adminToken,
    stderr: () => err,
    async api(method, path, body) {
      const res = await fetch(url + path, {
        method,
        headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
