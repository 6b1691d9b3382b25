/*
 * bench/proxy/idle-clients: memory the edge proxy holds per idle keep-alive
 * client, with idle read buffers given back (the default, after 1 s) and
 * kept (release after an hour). N clients each make one request through the
 * proxy (to nginx answering a fixed body) and then idle; the proxy runs in a
 * child process that reports its memory after two full GCs.
 *
 *   npx tsc -p . && node dist/bench/proxy/idle-clients.js [N]
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, startNginx } from './nginx.js';

interface Report { port?: number; rss?: number; arrayBuffers?: number; released?: number }

if (process.argv[2] === '--proxy') {
  // The child: one proxy routing pxbench.localhost to the backend port.
  const { createProxy } = await import('../../src/proxy/index.js');
  const { releasedBufferCount } = await import('../../src/proxy/sockio.js');
  const { createLogger } = await import('../../src/shared/log.js');
  const backend = Number(process.argv[3]);
  const machines = [{ id: 'backend', state: 'started', services: [{ internal_port: 80 }], hostPort: () => backend }];
  const p = createProxy({
    backends: { machinesFor: (app) => (app === 'pxbench' ? machines : undefined), start: async () => {}, stop: async () => {} },
    log: createLogger(() => {}),
    releaseIdleBufferMs: Number(process.argv[4]),
  });
  const port = await p.listen('127.0.0.1', 0);
  process.send!({ port });
  process.on('message', async () => {
    // ArrayBuffer backing stores are freed by a task after the GC: twice, with pauses.
    for (let i = 0; i < 2; i++) {
      global.gc!();
      await sleep(300);
    }
    const m = process.memoryUsage();
    process.send!({ rss: m.rss, arrayBuffers: m.arrayBuffers, released: releasedBufferCount() } satisfies Report);
  });
} else {
  const N = Number(process.argv[2] ?? 5000);
  const dir = mkdtempSync(join(tmpdir(), 'hangar-idle-bench-'));
  const backendPort = await freePort();
  const backend = await startNginx(dir, `server { listen 127.0.0.1:${backendPort}; location / { return 200 "hello, world\\n"; } }`, backendPort);
  try {
    for (const [label, releaseMs] of [['released after 1 s idle (default)', 1_000], ['kept (released after an hour)', 3_600_000]] as const) {
      const proxy = fork(fileURLToPath(import.meta.url), ['--proxy', String(backendPort), String(releaseMs)], { execArgv: ['--expose-gc'] });
      const next = () => new Promise<Report>((resolve) => proxy.once('message', (m) => resolve(m as Report)));
      const { port } = await next();
      const memory = async () => {
        proxy.send('report');
        return next();
      };
      const before = await memory();
      const clients: Socket[] = [];
      for (let i = 0; i < N; i += 200) {
        await Promise.all(
          Array.from({ length: Math.min(200, N - i) }, () => new Promise<void>((resolve, reject) => {
            const s = connect(port!, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: pxbench.localhost\r\n\r\n'));
            s.once('data', () => resolve());
            s.once('error', reject);
            clients.push(s);
          })),
        );
      }
      await sleep(2_500); // past the release and a sweep
      const idle = await memory();
      const per = (a: number, b: number) => ((a - b) / N / 1024).toFixed(1);
      console.log(`${N} idle keep-alive clients, read buffers ${label}: array buffers +${per(idle.arrayBuffers!, before.arrayBuffers!)} KiB per client, RSS +${per(idle.rss!, before.rss!)} KiB per client (${idle.released} buffers given back)`);
      for (const s of clients) s.destroy();
      proxy.kill();
      await sleep(300);
    }
  } finally {
    backend.kill('SIGQUIT');
    rmSync(dir, { recursive: true, force: true });
  }
}
