import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

// Debian's nginx for the proxy benches: a backend answering a fixed body, and the reverse proxy Hangar is compared with.

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** nginx with a temp prefix (one worker, no access log); `http` is the body of its http {} block. Resolves once it listens on `port`. */
export async function startNginx(dir: string, http: string, port: number): Promise<ChildProcess> {
  mkdirSync(dir, { recursive: true });
  const conf = `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  ${http}
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'inherit'] });
  const end = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}); see ${dir}/error.log`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(true)); // port taken → nginx is up
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)));
    });
    if (ok) return child;
    if (Date.now() > end) throw new Error('nginx did not start listening');
    await new Promise((r) => setTimeout(r, 50));
  }
}
