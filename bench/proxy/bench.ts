/**
 * bench/proxy: wrk against one app machine directly, through Hangar's edge
 * proxy, and through Debian's nginx as a reverse proxy (keep-alive upstream)
 * to the same machine port; same run, alternating order, several runs. Then
 * the autostart cold start (request → response for a stopped machine)
 * against the bare qemu boot time from bench/boot.
 *
 * Two backends: a host one (nginx answering a fixed body) where the proxies
 * are the bottleneck, which gives the headline rps_vs_nginx / p99_vs_nginx,
 * plus the CPU each proxy spends per request; and the real machine (busybox
 * httpd in a qemu microVM, TCG here) through its forwarded port, reported as
 * vm_* (guest-bound: tens of req/s under TCG).
 *
 *   node dist/bench/proxy/bench.js [--runs N] [--duration S] [--connections C]
 *        [--boot-json FILE] [--cold N] [--no-vm] [--profile DIR]
 *
 * BOOT_JSON / --boot-json: bench/boot's JSON line (else bench/boot is run
 * with 2 runs). Medians on stderr; the last stdout line is one JSON object.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Session } from 'node:inspector/promises';
import { run } from '../../src/shared/process.js';
import { freePort, startNginx } from './nginx.js';
import { startTestDaemon, type TestDaemon } from '../../test/helpers/daemon.js';
import { pushBusybox, waitState } from '../../test/helpers/machines.js';
import { call } from '../../test/proxy/helpers.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: process.env.BENCH_RUNS ?? '3' },
    duration: { type: 'string', default: '8' },
    connections: { type: 'string', default: '32' },
    'boot-json': { type: 'string', default: process.env.BOOT_JSON },
    cold: { type: 'string', default: '3' },
    'no-vm': { type: 'boolean', default: false },
    profile: { type: 'string' },
  },
});
const RUNS = Number(args.runs);
const DURATION = Number(args.duration);
const CONNS = Number(args.connections);
const log = (m: string) => process.stderr.write(m + '\n');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const APP = 'pxbench';

interface WrkResult { rps: number; p50: number; p99: number; errors: number; requests: number; cpuUsPerReq?: number }

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) return NaN;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2] as 'us' | 'ms' | 's' | 'm'];
}

async function wrk(url: string, host: string): Promise<WrkResult> {
  const r = await run('wrk', ['-t1', `-c${CONNS}`, `-d${DURATION}s`, '--timeout', '10s', '--latency', '-H', `Host: ${host}`, url], { timeoutMs: (DURATION + 60) * 1000 });
  const out = r.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  const p50 = toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? '');
  const p99 = toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sockErr ? sockErr.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0);
  if (!Number.isFinite(rps)) throw new Error(`cannot read wrk output:\n${out}`);
  return { rps, p50, p99, errors, requests };
}

const reverseProxy = (listen: number, backend: number) => `
  upstream machine { server 127.0.0.1:${backend}; keepalive 64; }
  server {
    listen 127.0.0.1:${listen};
    location / {
      proxy_pass http://machine;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }`;

interface Series { direct: WrkResult[]; hangar: WrkResult[]; nginx: WrkResult[] }

/** CPU seconds (user + system) a process has used so far. */
function cpuOf(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100)
}

/** Runs wrk and charges the CPU the proxy process used to each request. */
async function measured(target: () => Promise<WrkResult>, pid: number | undefined): Promise<WrkResult> {
  const before = pid ? cpuOf(pid) : 0;
  const r = await target();
  if (pid) r.cpuUsPerReq = ((cpuOf(pid) - before) * 1e6) / r.requests;
  return r;
}

async function series(label: string, backendPort: number, proxyPort: number, nginxPort: number, path: string, nginxMaster?: ChildProcess): Promise<Series> {
  const s: Series = { direct: [], hangar: [], nginx: [] };
  const worker = nginxMaster?.pid ? Number(readFileSync(`/proc/${nginxMaster.pid}/task/${nginxMaster.pid}/children`, 'utf8').trim().split(/\s+/)[0]) : undefined;
  const targets = {
    direct: () => wrk(`http://127.0.0.1:${backendPort}${path}`, `127.0.0.1:${backendPort}`),
    hangar: () => measured(() => wrk(`http://127.0.0.1:${proxyPort}${path}`, `${APP}.localhost:${proxyPort}`), process.pid),
    nginx: () => measured(() => wrk(`http://127.0.0.1:${nginxPort}${path}`, `${APP}.localhost`), worker),
  };
  const order: (keyof Series)[] = ['direct', 'hangar', 'nginx'];
  // Warm-up (connections, JIT), not counted.
  for (const k of order) await run('wrk', ['-t1', `-c${CONNS}`, '-d2s', '-H', `Host: ${APP}.localhost`, `http://127.0.0.1:${k === 'direct' ? backendPort : k === 'hangar' ? proxyPort : nginxPort}${path}`]);
  for (let r = 0; r < RUNS; r++) {
    const rot = [...order.slice(r % 3), ...order.slice(0, r % 3)];
    for (const k of rot) {
      const res = await targets[k]();
      s[k].push(res);
      log(`${label} run ${r + 1} ${k.padEnd(6)}: ${res.rps.toFixed(0).padStart(6)} req/s  p50 ${res.p50.toFixed(2)} ms  p99 ${res.p99.toFixed(2)} ms${res.cpuUsPerReq ? `  cpu ${res.cpuUsPerReq.toFixed(1)} µs/req` : ''}${res.errors ? `  errors ${res.errors}` : ''}`);
      if (res.errors && k === 'hangar') log(`  what the proxy answered under load: ${JSON.stringify(await sampleAnswers(proxyPort, `${APP}.localhost:${proxyPort}`, path))}`);
    }
  }
  return s;
}

function summary(s: Series) {
  const m = (k: keyof Series, f: keyof WrkResult) => median(s[k].map((x) => x[f] ?? NaN));
  return {
    direct_rps: Math.round(m('direct', 'rps')),
    hangar_rps: Math.round(m('hangar', 'rps')),
    nginx_rps: Math.round(m('nginx', 'rps')),
    direct_p99_ms: Number(m('direct', 'p99').toFixed(2)),
    hangar_p99_ms: Number(m('hangar', 'p99').toFixed(2)),
    nginx_p99_ms: Number(m('nginx', 'p99').toFixed(2)),
    rps_vs_nginx: Number((m('hangar', 'rps') / m('nginx', 'rps')).toFixed(3)),
    p99_vs_nginx: Number((m('hangar', 'p99') / m('nginx', 'p99')).toFixed(3)),
    hangar_cpu_us_per_req: Number(m('hangar', 'cpuUsPerReq').toFixed(1)),
    nginx_cpu_us_per_req: Number(m('nginx', 'cpuUsPerReq').toFixed(1)),
    cpu_vs_nginx: Number((m('hangar', 'cpuUsPerReq') / m('nginx', 'cpuUsPerReq')).toFixed(2)),
    errors: Object.values(s).flat().reduce((a: number, x: WrkResult) => a + x.errors, 0),
  };
}

async function bootBaseline(): Promise<{ bare_ms: number; source: string } | undefined> {
  let line: string | undefined;
  let source = args['boot-json'];
  if (source && existsSync(source)) line = readFileSync(source, 'utf8').trim().split('\n').at(-1);
  else if (existsSync(new URL('../boot/bench.js', import.meta.url))) {
    log('running bench/boot (2 runs) for the bare boot time');
    const r = await run(process.execPath, [new URL('../boot/bench.js', import.meta.url).pathname, '2'], { timeoutMs: 600_000 }).catch((e: Error) => {
      log(`bench/boot failed: ${e.message}`);
      return undefined;
    });
    line = r?.stdout.trim().split('\n').at(-1);
    source = 'bench/boot (2 runs, this run)';
  }
  if (!line) return undefined;
  const j = JSON.parse(line) as { bare_ms?: number };
  return typeof j.bare_ms === 'number' ? { bare_ms: j.bare_ms, source: source ?? 'bench/boot' } : undefined;
}

const work = mkdtempSync(join(tmpdir(), 'hangar-bench-proxy-'));
const children: ChildProcess[] = [];
// Interrupted: still stop nginx and the VM (guests outlive the daemon).
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    for (const c of children) c.kill('SIGQUIT');
    void (async () => {
      if (t) {
        const list = (await t.api('GET', `/v1/apps/${APP}/machines`)).body;
        for (const m of Array.isArray(list) ? list : []) await t.api('DELETE', `/v1/apps/${APP}/machines/${m.id}?force=true`);
        await t.close();
      }
      rmSync(work, { recursive: true, force: true });
      process.exit(130);
    })();
  });
}
let t: TestDaemon | undefined;
let profiler: Session | undefined;
try {
  t = await startTestDaemon({ proxyListen: '127.0.0.1:0' });
  const proxyPort = Number(new URL(t.daemon.proxyUrl).port);
  const result: Record<string, unknown> = { bench: 'proxy', runs: RUNS, duration_s: DURATION, connections: CONNS, nginx_workers: 1 };

  // Host backend: nginx answering a fixed 13-byte body (keep-alive).
  const hostBackend = await freePort();
  children.push(await startNginx(join(work, 'backend'), `server { listen 127.0.0.1:${hostBackend}; location / { return 200 "hello, world\\n"; } }`, hostBackend));

  if (args.profile) {
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.start');
  }

  // Host backend first, before any VM runs: a TCG guest takes CPU from
  // everything else on this 2-core machine. Hangar's proxy code (a second
  // instance in this process, same as the daemon's) routes the app to it.
  const hostProxyPort = await startHostRoutedProxy(hostBackend);
  const nginxHost = await freePort();
  const nginxHostProc = await startNginx(join(work, 'nginx-host'), reverseProxy(nginxHost, hostBackend), nginxHost);
  children.push(nginxHostProc);
  const hostSummary = summary(await series('host', hostBackend, hostProxyPort, nginxHost, '/', nginxHostProc));

  let vmPort: number | undefined;
  let machineId: string | undefined;
  if (!args['no-vm']) {
    try {
      assert201(await t.api('POST', '/v1/apps', { app_name: APP }));
      const image = await pushBusybox(t, APP, 'v1');
      const cmd = ['/bin/sh', '-c', 'mkdir -p /www && echo "hello, world" > /www/index.html && exec httpd -f -p 8080 -h /www'];
      const created = await t.api('POST', `/v1/apps/${APP}/machines`, {
        config: {
          image,
          init: { cmd },
          services: [{ protocol: 'tcp', internal_port: 8080, ports: [{ port: 80, handlers: ['http'] }], autostart: true, autostop: 'stop', min_machines_running: 0 }],
        },
      });
      if (created.status !== 200) throw new Error(`create: ${created.status} ${JSON.stringify(created.body)}`);
      machineId = created.body.id as string;
      await waitState(t, APP, machineId, 'started', 180);
      const r = await call(proxyPort, `${APP}.localhost`, { path: '/index.html' });
      if (r.status !== 200) throw new Error(`through the proxy: ${r.status} ${r.body}`);
      vmPort = t.daemon.machines.get(APP, machineId).ports['8080'];
    } catch (err) {
      log(`VM backend unavailable (${(err as Error).message}); only the host backend is measured`);
      result.vm_error = (err as Error).message;
    }
  }

  let vmSummary: ReturnType<typeof summary> | undefined;
  if (vmPort && machineId) {
    const nginxVm = await freePort();
    const nginxVmProc = await startNginx(join(work, 'nginx-vm'), reverseProxy(nginxVm, vmPort), nginxVm);
    children.push(nginxVmProc);
    vmSummary = summary(await series('vm  ', vmPort, proxyPort, nginxVm, '/index.html', nginxVmProc));
  }

  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    mkdirSync(args.profile!, { recursive: true });
    const file = join(args.profile!, `proxy-${Date.now()}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    log(`cpu profile of the daemon process: ${file}`);
    profiler.disconnect();
  }

  // Autostart cold start: stopped machine → first response through the
  // proxy, alternating with the same boot without the proxy (Machines API
  // start, then polling httpd on the forwarded port every 20 ms).
  const cold: number[] = [];
  const direct: number[] = [];
  /** Per proxy cold start: its answer minus the app's first direct answer in the same boot. */
  const afterApp: number[] = [];
  if (machineId) {
    const stopIt = async () => {
      const stop = await t!.api('POST', `/v1/apps/${APP}/machines/${machineId}/stop`, {});
      if (stop.status !== 200) throw new Error(`stop: ${stop.status} ${JSON.stringify(stop.body)}`);
      await waitState(t!, APP, machineId!, 'stopped', 120);
    };
    for (let i = 0; i < Number(args.cold); i++) {
      await stopIt();
      let t0 = performance.now();
      // The same boot polled directly as well: when the app itself could
      // first answer, so the proxy's own share is measured within one boot
      // (boots vary by a second or more from one to the next under TCG).
      const appUp = (async () => {
        while (t!.daemon.machines.get(APP, machineId!).state !== 'started') await new Promise((r) => setTimeout(r, 5));
        await firstAnswer(t!.daemon.machines.get(APP, machineId!).ports['8080']!);
        return performance.now();
      })();
      const r = await call(proxyPort, `${APP}.localhost`, { path: '/index.html' });
      const answeredAt = performance.now();
      const ms = answeredAt - t0;
      if (r.status !== 200) throw new Error(`autostart: ${r.status} ${r.body}`);
      cold.push(ms);
      afterApp.push(answeredAt - (await appUp));
      await stopIt();
      t0 = performance.now();
      const started = await t.api('POST', `/v1/apps/${APP}/machines/${machineId}/start`, {});
      if (started.status !== 200) throw new Error(`start: ${started.status} ${JSON.stringify(started.body)}`);
      const port = t.daemon.machines.get(APP, machineId).ports['8080']!;
      await firstAnswer(port);
      direct.push(performance.now() - t0);
      log(`cold start run ${i + 1}: through the proxy ${ms.toFixed(0)} ms (${afterApp.at(-1)!.toFixed(0)} ms after the app first answered a direct poll), API start + direct poll ${direct.at(-1)!.toFixed(0)} ms`);
    }
  }
  const boot = cold.length ? await bootBaseline() : undefined;

  // The headline ratios come from the host backend, where the proxies are
  // the bottleneck. Behind a TCG guest (busybox httpd forking per request,
  // tens of req/s) every path is guest-bound and the ratio says nothing
  // about the proxy; it is reported as vm_* for completeness.
  Object.assign(result, {
    backend: 'host: nginx answering a fixed body (proxy-bound); vm_*: busybox httpd in a qemu microVM under TCG (guest-bound)',
    rps_vs_nginx: hostSummary.rps_vs_nginx,
    p99_vs_nginx: hostSummary.p99_vs_nginx,
    cpu_vs_nginx: hostSummary.cpu_vs_nginx,
    vm_rps_vs_nginx: vmSummary?.rps_vs_nginx ?? null,
    vm_p99_vs_nginx: vmSummary?.p99_vs_nginx ?? null,
    autostart_cold_ms: cold.length ? Math.round(median(cold)) : null,
    api_start_direct_ms: direct.length ? Math.round(median(direct)) : null,
    bare_boot_ms: boot?.bare_ms ?? null,
    // What the proxy adds: its medians against the API start's (different
    // boots, same run, alternating), and within each proxy cold start, its
    // answer after the app's first answer to a direct poll of that boot.
    autostart_overhead_ms: cold.length ? Math.round(median(cold) - median(direct)) : null,
    autostart_after_app_answered_ms: afterApp.length ? Math.round(median(afterApp)) : null,
    autostart_vs_bare_boot_ms: cold.length && boot ? Math.round(median(cold) - boot.bare_ms) : null,
    boot_source: boot?.source ?? null,
    vm: vmSummary ?? null,
    host: hostSummary,
  });
  if (vmSummary) log(`median (vm backend): hangar ${vmSummary.hangar_rps} req/s vs nginx ${vmSummary.nginx_rps} req/s (direct ${vmSummary.direct_rps}); p99 ${vmSummary.hangar_p99_ms} vs ${vmSummary.nginx_p99_ms} ms`);
  log(`median (host backend): hangar ${hostSummary.hangar_rps} req/s vs nginx ${hostSummary.nginx_rps} req/s (direct ${hostSummary.direct_rps}); p99 ${hostSummary.hangar_p99_ms} vs ${hostSummary.nginx_p99_ms} ms; CPU ${hostSummary.hangar_cpu_us_per_req} vs ${hostSummary.nginx_cpu_us_per_req} µs/request`);
  if (cold.length) log(`autostart cold start median ${Math.round(median(cold))} ms (${Math.round(median(afterApp))} ms after the app first answered); API start + direct poll ${Math.round(median(direct))} ms; bare boot ${boot?.bare_ms ?? '?'} ms (${boot?.source ?? 'unavailable'})`);
  console.log(JSON.stringify(result));
} finally {
  for (const c of children) c.kill('SIGQUIT');
  if (t) {
    const list = (await t.api('GET', `/v1/apps/${APP}/machines`)).body;
    for (const m of Array.isArray(list) ? list : []) await t.api('DELETE', `/v1/apps/${APP}/machines/${m.id}?force=true`);
    await t.close();
  }
  await stopHostProxy?.();
  rmSync(work, { recursive: true, force: true });
}

function assert201(r: { status: number; body: unknown }) {
  if (r.status !== 201) throw new Error(`create app: ${r.status} ${JSON.stringify(r.body)}`);
}

var stopHostProxy: (() => Promise<void>) | undefined;
/** Hangar's proxy (same code as the daemon's) routing `pxbench.localhost` to the host backend. */
async function startHostRoutedProxy(backendPort: number): Promise<number> {
  const { createProxy } = await import('../../src/proxy/index.js');
  const { createLogger } = await import('../../src/shared/log.js');
  const machine = { id: 'host-backend', state: 'started', services: [{ internal_port: 80 }], hostPort: () => backendPort };
  // One list object, as the daemon's adapter (machines-adapter.ts) hands out
  // its cached list: a new array per call made the proxy redo its
  // per-list service lookup (and a WeakMap insert) on every request, work
  // the daemon's proxy does not do.
  const machines = [machine];
  const p = createProxy({ backends: { machinesFor: (app) => (app === APP ? machines : undefined), start: async () => {}, stop: async () => {} }, log: createLogger(() => {}) });
  const port = await p.listen('127.0.0.1', 0);
  stopHostProxy = () => p.close();
  return port;
}

/** Polls GET /index.html on a machine port every 20 ms (overlapping) until one answers 200. */
async function firstAnswer(port: number): Promise<void> {
  const end = Date.now() + 180_000;
  await new Promise<void>((resolve, reject) => {
    let done = false;
    const tick = setInterval(() => {
      if (done) return;
      if (Date.now() > end) {
        done = true;
        clearInterval(tick);
        reject(new Error('httpd never answered'));
      }
      const req = httpRequest({ host: '127.0.0.1', port, path: '/index.html', agent: false, timeout: 2_000 }, (res) => {
        res.resume();
        if (res.statusCode === 200 && !done) {
          done = true;
          clearInterval(tick);
          resolve();
        }
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => {});
      req.end();
    }, 20);
  });
}

/** 32 keep-alive clients for 3 s: tally of statuses and error bodies (diagnostics). */
async function sampleAnswers(port: number, host: string, path: string): Promise<Record<string, number>> {
  const { Agent } = await import('node:http');
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const tally: Record<string, number> = {};
  const end = Date.now() + 3_000;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (Date.now() < end) {
        try {
          const r = await call(port, host, { path, agent });
          const k = r.status === 200 ? '200' : `${r.status} ${r.body.trim().slice(0, 200)}`;
          tally[k] = (tally[k] ?? 0) + 1;
        } catch (err) {
          const k = `client error ${(err as Error).message}`;
          tally[k] = (tally[k] ?? 0) + 1;
        }
      }
    }),
  );
  agent.destroy();
  return tally;
}
