import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon, type DaemonOptions } from '../../src/daemon/index.js';
import { createLogger } from '../../src/shared/log.js';
import { reconcileVms } from '../../src/vm/index.js';

export interface TestDaemon {
  daemon: Daemon;
  dataDir: string;
  adminToken: string;
  /** fetch against the daemon with a bearer token (admin by default). */
  api(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any; headers: Headers }>;
  close(): Promise<void>;
}

/** Start a real daemon on 127.0.0.1:<free port> with a fresh data dir. */
export async function startTestDaemon(options: Partial<DaemonOptions> & { keepVms?: boolean } = {}): Promise<TestDaemon> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'hangar-test-'));
  const logs: string[] = [];
  // HANGAR_TEST_LOG=1 shows the daemon's log on stderr while debugging a test.
  const sink = process.env.HANGAR_TEST_LOG ? (l: string) => process.stderr.write(l + '\n') : (l: string) => logs.push(l);
  const { keepVms: _keep, ...daemonOptions } = options;
  const daemon = await startDaemon({ listen: '127.0.0.1:0', logger: createLogger(sink), ...daemonOptions, dataDir });
  const adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  return {
    daemon,
    dataDir,
    adminToken,
    async api(method, path, body, token = adminToken) {
      const res = await fetch(daemon.url + path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* leave as text */
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async close() {
      await daemon.close();
      // A daemon leaves its VMs running on shutdown (they are re-adopted on
      // the next start); a test must not, or qemu processes pile up.
      if (!options.keepVms) await reconcileVms(join(dataDir, 'machines'), () => false);
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
