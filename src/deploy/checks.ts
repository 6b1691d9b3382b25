import { connect } from 'node:net';
import { request } from 'node:http';
import type { ResolvedCheck } from '../appconfig/index.js';

/**
 * Health checks as the deploy runs them: against the machine's forwarded
 * host port on 127.0.0.1. Resolves with undefined when the check passes,
 * or a sentence saying why it failed.
 */
export function runCheck(check: ResolvedCheck, hostPort: number): Promise<string | undefined> {
  return check.type === 'tcp' ? tcpCheck(hostPort, check.timeoutMs) : httpCheck(check, hostPort);
}

function tcpCheck(port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    let settled = false;
    const done = (why?: string) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      resolve(why);
    };
    sock.setTimeout(timeoutMs, () => done(`TCP connect timed out after ${timeoutMs} ms`));
    // A user-mode network port forward (qemu slirp) accepts on the host before
    // the guest does, then resets if nothing listens inside: the connection
    // counts only once it has stayed open for a moment (or sent data).
    sock.once('connect', () => setTimeout(() => done(), Math.min(400, timeoutMs)));
    sock.once('data', () => done());
    sock.once('end', () => done('TCP connection closed at once: nothing listens on the port in the machine yet'));
    sock.once('error', (e) => done(`TCP connect failed: ${e.message}`));
  });
}

function httpCheck(c: ResolvedCheck, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path: c.path, method: c.method, headers: c.headers, timeout: c.timeoutMs },
      (res) => {
        res.resume();
        const s = res.statusCode ?? 0;
        // Fly: 2xx passes; redirects are not followed and count as passing too.
        resolve(s >= 200 && s < 400 ? undefined : `HTTP ${c.method} ${c.path} answered ${s}`);
      },
    );
    req.on('timeout', () => {
      req.destroy();
      resolve(`HTTP ${c.method} ${c.path} timed out after ${c.timeoutMs} ms`);
    });
    req.on('error', (e) => resolve(`HTTP ${c.method} ${c.path} failed: ${e.message}`));
    req.end();
  });
}
