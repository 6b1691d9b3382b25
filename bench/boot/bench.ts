/**
 * bench/boot: time to the app's first log line, Hangar vs a bare qemu.
 *
 * - hangar create:  startVm() on a fresh state dir → first stdout line
 * - hangar restart: startVm() again on the state dir of a stopped VM → first line
 * - bare:           qemu-system-x86_64 with the same kernel, initramfs (+ the
 *                   same run config), rootfs and scratch template, prepared
 *                   before the clock starts; the log port on qemu's stdout → first line
 *
 * Runs alternate (bare, create, bare, restart, ...); medians are printed and
 * the last line is one JSON object. To measure another entry point (e.g. the
 * Machines API create call), replace hangarCreate/hangarRestart below.
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
import { makeRootfs, tempDir } from '../../test/vm/fixtures.js';

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
const hangarCreate = (spec: VmSpec) => hangarBoot(spec);
const hangarRestart = (spec: VmSpec) => hangarBoot(spec);

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
try {
  const accel = await resolveAccel();
  const rootfs = await makeRootfs(work, 'bb');
  const spec = (id: string): VmSpec => ({ id, stateDir: join(work, id), rootfs, run: { image: { cmd: APP } } });
  log(`bench boot: ${runs} runs each, accel=${accel}`);
  await bareBoot(join(work, 'warm'), spec('warm')); // page cache warm-up, not counted
  const bare: number[] = [], create: number[] = [], restart: number[] = [];
  for (let r = 0; r < runs; r++) {
    bare.push(await bareBoot(join(work, `bare-${r}`), spec(`bare-${r}`)));
    create.push(await hangarCreate(spec(`m-${r}`)));
    bare.push(await bareBoot(join(work, `bare-${r}b`), spec(`bare-${r}b`)));
    restart.push(await hangarRestart(spec(`m-${r}`)));
    log(`run ${r + 1}: bare ${bare.at(-2)!.toFixed(0)}/${bare.at(-1)!.toFixed(0)} ms, create ${create.at(-1)!.toFixed(0)} ms, restart ${restart.at(-1)!.toFixed(0)} ms`);
  }
  const b = median(bare), c = median(create), rs = median(restart);
  log(`median: bare ${b.toFixed(0)} ms, hangar create ${c.toFixed(0)} ms, hangar restart ${rs.toFixed(0)} ms; Hangar's work before qemu starts: ${median(prespawn)} ms`);
  console.log(JSON.stringify({
    bench: 'boot', accel, runs,
    create_ratio: Number((c / b).toFixed(3)), restart_ratio: Number((rs / b).toFixed(3)),
    hangar_create_ms: Math.round(c), hangar_restart_ms: Math.round(rs), bare_ms: Math.round(b),
    hangar_prespawn_ms: median(prespawn), load_avg_1m: Number(loadavg()[0]!.toFixed(1)),
  }));
} finally {
  rmSync(work, { recursive: true, force: true });
}
