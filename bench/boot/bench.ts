/**
 * bench/boot: time to the app's first log line, Hangar vs a bare qemu.
 *
 * - hangar create:  Machines API `POST /v1/apps/bench/machines` (image already
 *                   converted) → the first stdout line on the logs API stream
 * - hangar restart: `POST .../machines/{id}/start` of that stopped machine →
 *                   its next first line
 * - driver create:  startVm() directly (the VM layer alone, for reference)
 * - bare:           qemu-system-x86_64 with the same kernel, initramfs (+ the
 *                   same run config), the same EROFS rootfs the daemon made,
 *                   and the scratch template, prepared before the clock
 *                   starts; the log port on qemu's stdout → first line
 *
 * Runs alternate (bare, create, bare, restart, ...); medians are printed and
 * the last line is one JSON object.
 *
 *   node dist/bench/boot/bench.js [runs]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { buildQemuArgs, compileRunConfig, findGuestArtifacts, qemuBinary, resolveAccel, startVm, type VmSpec } from '../../src/vm/index.js';
import { configCpio } from '../../src/vm/runconfig.js';
import { scratchTemplate } from '../../src/vm/scratch.js';
import { tempDir } from '../../test/vm/fixtures.js';
import { startDaemon } from '../../src/daemon/index.js';
import { createLogger } from '../../src/shared/log.js';
import { pushBusybox } from '../../test/helpers/machines.js';
import type { TestDaemon } from '../../test/helpers/daemon.js';

const runs = Number(process.argv[2] ?? process.env.BENCH_RUNS ?? 4);
const APP = ['/bin/sh', '-c', 'echo first-line; exit 0'];
const log = (m: string) => process.stderr.write(`${m}\n`);
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };

const prespawn: number[] = [];

/** Hangar: from the startVm call to the first stdout line. */
async function hangarBoot(spec: VmSpec): Promise<number> {
  const t0 = performance.now();
  const h = await startVm(spec);
  prespawn.push(h.timings.spawnedAt - h.timings.requestedAt);
  const ms = await new Promise<number>((resolve, reject) => {
    h.on('log', (l) => { if (l.stream === 'stdout') resolve(performance.now() - t0); });
    h.once('exit', (e) => reject(new Error(`VM exited before its first line: ${e.message}`)));
  });
  await h.waitExit();
  await h.dispose();
  return ms;
}

/** The daemon's logs API as a stream of lines, for timing first lines. */
class LogFollower {
  private waiters: Array<{ machine: string; after: number; resolve: (t: number) => void }> = [];
  private readonly controller = new AbortController();
  constructor(url: string, token: string) {
    void (async () => {
      const res = await fetch(`${url}/v1/apps/bench/logs?follow=true&limit=0`, { headers: { authorization: `Bearer ${token}` }, signal: this.controller.signal });
      if (!res.ok) throw new Error(`logs stream: HTTP ${res.status} ${await res.text()}`);
      let buf = '';
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          const now = performance.now();
          buf += Buffer.from(chunk).toString('utf8');
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const text = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (!text.trim()) continue;
            const l = JSON.parse(text) as { machine_id: string; stream: string };
            if (process.env.BENCH_DEBUG) log(`log: ${text}`);
            if (l.stream !== 'stdout') continue;
            this.waiters = this.waiters.filter((w) => (w.machine === l.machine_id || w.machine === '*') && now >= w.after ? (w.resolve(now), false) : true);
          }
        }
      } catch (err) {
        if (!this.controller.signal.aborted) throw err;
      }
    })().catch((err) => {
      log(`bench: ${(err as Error).message}`);
      process.exit(1);
    });
  }
  /** Resolves with the time of the next stdout line of `machine` ('*': any). */
  next(machine: string): Promise<number> {
    return new Promise((resolve) => this.waiters.push({ machine, after: performance.now(), resolve }));
  }
  close() {
    this.controller.abort();
  }
}

async function api(url: string, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(url + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** Bare qemu: everything prepared up front, the clock covers only qemu. */
async function bareBoot(dir: string, spec: VmSpec): Promise<number> {
  const artifacts = findGuestArtifacts();
  const accel = await resolveAccel(artifacts);
  mkdirSync(dir, { recursive: true });
  const cfg = compileRunConfig(spec.run, { root: 'root', scratch: 'scratch', volumes: [] }, { hostname: 'bare' });
  writeFileSync(join(dir, 'initrd.img'), Buffer.concat([readFileSync(artifacts.initramfs), configCpio(cfg)]));
  const template = await scratchTemplate(artifacts, dir, 2048);
  const args = buildQemuArgs({ spec, artifacts, accel, scratchTemplate: template });
  // the log port goes to qemu's stdout instead of a file; no QMP
  const i = args.indexOf('file,id=log,path=logs.rec');
  args[i] = 'stdio,id=log,signal=off';
  const q = args.indexOf('-qmp');
  args.splice(q, 2);
  const t0 = performance.now();
  // stdin stays open: at EOF qemu's stdio chardev reports the port closed and the guest's log writes would block
  if (process.env.BENCH_DEBUG) log(`bare: ${qemuBinary()} ${args.join(' ')}`);
  const child = spawn(qemuBinary(), args, { cwd: dir, stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, TMPDIR: dir } });
  const ms = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString('latin1'); if (/(^|\n)o \d+\n/.test(out)) resolve(performance.now() - t0); });
    child.once('exit', () => reject(new Error('bare qemu exited before the first line')));
  });
  await new Promise((r) => child.once('exit', r));
  return ms;
}

const work = tempDir('hangar-bench-boot-');
const daemon = await startDaemon({ dataDir: join(work, 'data'), listen: '127.0.0.1:0', logger: createLogger(() => {}) });
const token = readFileSync(join(work, 'data', 'admin-token'), 'utf8').trim();
let follower: LogFollower | undefined;
try {
  const accel = await resolveAccel();
  await api(daemon.url, token, 'POST', '/v1/apps', { app_name: 'bench' });
  const logs = (follower = new LogFollower(daemon.url, token));
  const image = await pushBusybox({ daemon, adminToken: token } as unknown as TestDaemon, 'bench', 'v1');
  log(`pushed ${image}`);
  // Convert once (not timed), and boot the bare qemu from the very same EROFS image.
  const acquired = await daemon.rootfs.acquire(`${daemon.url.replace('http://', '')}/${image}`);
  const rootfs = acquired.imagePath;
  log(`converted to ${rootfs}`);
  const spec = (id: string): VmSpec => ({ id, stateDir: join(work, id), rootfs, run: { image: { cmd: APP } } });
  const config = { image, init: { cmd: APP }, restart: { policy: 'no' } };

  async function apiCreate(): Promise<{ ms: number; id: string }> {
    const first = logs.next('*');
    const t0 = performance.now();
    const m = await api(daemon.url, token, 'POST', '/v1/apps/bench/machines', { config });
    if (process.env.BENCH_DEBUG) log(`created ${m.id} ${m.state}`);
    const ms = (await first) - t0;
    await api(daemon.url, token, 'GET', `/v1/apps/bench/machines/${m.id}/wait?state=stopped&timeout=300`);
    return { ms, id: m.id };
  }
  async function apiRestart(id: string): Promise<number> {
    const first = logs.next(id);
    const t0 = performance.now();
    await api(daemon.url, token, 'POST', `/v1/apps/bench/machines/${id}/start`);
    const ms = (await first) - t0;
    await api(daemon.url, token, 'GET', `/v1/apps/bench/machines/${id}/wait?state=stopped&timeout=300`);
    return ms;
  }

  log(`bench boot: ${runs} runs each, accel=${accel}`);
  await bareBoot(join(work, 'warm'), spec('warm')); // page cache warm-up, not counted
  const bare: number[] = [], create: number[] = [], restart: number[] = [], driver: number[] = [];
  for (let r = 0; r < runs; r++) {
    bare.push(await bareBoot(join(work, `bare-${r}`), spec(`bare-${r}`)));
    const c = await apiCreate();
    create.push(c.ms);
    bare.push(await bareBoot(join(work, `bare-${r}b`), spec(`bare-${r}b`)));
    restart.push(await apiRestart(c.id));
    driver.push(await hangarBoot(spec(`d-${r}`)));
    log(`run ${r + 1}: bare ${bare.at(-2)!.toFixed(0)}/${bare.at(-1)!.toFixed(0)} ms, API create ${create.at(-1)!.toFixed(0)} ms, API restart ${restart.at(-1)!.toFixed(0)} ms, driver ${driver.at(-1)!.toFixed(0)} ms`);
  }
  acquired.lease.release();
  const b = median(bare), c = median(create), rs = median(restart), d = median(driver);
  log(`median: bare ${b.toFixed(0)} ms, API create ${c.toFixed(0)} ms, API restart ${rs.toFixed(0)} ms, driver ${d.toFixed(0)} ms; Hangar's work before qemu starts: ${median(prespawn)} ms`);
  console.log(JSON.stringify({
    bench: 'boot', accel, runs,
    create_ratio: Number((c / b).toFixed(3)), restart_ratio: Number((rs / b).toFixed(3)),
    hangar_create_ms: Math.round(c), hangar_restart_ms: Math.round(rs), bare_ms: Math.round(b),
    driver_create_ms: Math.round(d), driver_ratio: Number((d / b).toFixed(3)),
    hangar_prespawn_ms: median(prespawn), load_avg_1m: Number(loadavg()[0]!.toFixed(1)),
  }));
} finally {
  follower?.close();
  await daemon.close();
  rmSync(work, { recursive: true, force: true });
}
