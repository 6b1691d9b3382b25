/**
 * bench/deploy: after a one-line source change in examples/hello-python,
 * time `hangar deploy` until the new version answers, and compare its build
 * part with `docker build` (BuildKit, Debian's docker.io engine) of the same
 * Dockerfile and change. Runs alternate; medians; last line is JSON.
 *
 *   node dist/bench/deploy/run.js [--runs N] [--trace]
 *
 * The peer is Debian's docker.io CLI (/usr/bin/docker 20.10, BuildKit built
 * in, switched on with DOCKER_BUILDKIT=1; no buildx plugin needed) against a
 * dockerd this script starts. /usr/local/bin/docker (first on PATH here) is
 * not Debian's and refuses BuildKit without buildx, so it is not used.
 * Which builder really ran is read from docker's output (BuildKit prints
 * `#N [stage] ...` records, the classic builder `Step N/M :`).
 *
 * Hangar's build is split into phases by the time each output line reaches
 * the CLI's stderr (see PHASES); --trace prints the last run's timeline.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon } from '../../src/daemon/index.js';
import { createLogger } from '../../src/shared/log.js';

const repo = join(fileURLToPath(import.meta.url), '..', '..', '..', '..');
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 3) || 3;
const trace = process.argv.includes('--trace');
const DOCKER = process.env.HANGAR_BENCH_DOCKER ?? '/usr/bin/docker';

/**
 * Phases of `hangar deploy` up to the recorded release, each ending at the
 * first output line matching its pattern: CLI start-up (config, context
 * plan), context upload + daemon preparation (tar extract, token, mirror
 * check), the build (Hangar's native builder, or buildah bud with
 * HANGAR_BUILDER=buildah), the push into Hangar's registry, and the deploy
 * request recording the release.
 */
const PHASES: Array<[string, RegExp]> = [
  ['cli_start', /^Sending build context/m],
  ['upload_prepare', /^building \S+ with /m],
  ['build', /^pushing /m],
  ['push', /^image: /m],
  ['release', /^release v\d+:/m],
];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Timed {
  code: number;
  total: number;
  mark: number | null;
  out: string;
  /** [seconds since start, line] for every output line, as it arrived. */
  lines: Array<[number, string]>;
}

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string, marker?: RegExp): Promise<Timed> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let mark: number | null = null;
    let out = '';
    const lines: Array<[number, string]> = [];
    const split = () => {
      let buf = '';
      return (d: Buffer) => {
        const now = (performance.now() - t0) / 1000;
        out += d.toString();
        buf += d.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          lines.push([now, buf.slice(0, i)]);
          buf = buf.slice(i + 1);
        }
        if (marker && mark === null && marker.test(out)) mark = now;
      };
    };
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', split());
    child.stderr.on('data', split());
    child.on('close', (code) => resolve({ code: code ?? 1, total: (performance.now() - t0) / 1000, mark, out, lines }));
  });
}

/** Seconds spent in each of PHASES, from the arrival times of the lines that end them. */
function phases(t: Timed): Record<string, number> {
  const out: Record<string, number> = {};
  let prev = 0;
  for (const [name, re] of PHASES) {
    const hit = t.lines.find(([, l]) => re.test(l));
    if (!hit) continue;
    out[name] = +(hit[0] - prev).toFixed(3);
    prev = hit[0];
  }
  return out;
}

/** Which builder produced this `docker build --progress=plain` output. */
function dockerBuilderOf(out: string): 'buildkit' | 'classic' | 'unknown' {
  if (/^#\d+ \[/m.test(out)) return 'buildkit';
  if (/^Step \d+\/\d+ : /m.test(out)) return 'classic';
  return 'unknown';
}

/**
 * `hangar` as installed, in the bench's own directory: the launcher and the
 * built CLI (bundle, startup snapshot) copied with their times, so a `tsc`
 * run in the repository meanwhile (which makes the snapshot look stale to
 * bin/hangar) cannot change what is measured. Says how the CLI starts.
 */
function installCli(dir: string): { bin: string; startedFrom: string } {
  const from = join(repo, 'dist', 'src', 'cli');
  const to = join(dir, 'dist', 'src', 'cli');
  cpSync(join(repo, 'package.json'), join(dir, 'package.json'), { preserveTimestamps: true });
  cpSync(join(repo, 'bin', 'hangar'), join(dir, 'bin', 'hangar'), { preserveTimestamps: true });
  for (const f of ['bin.js', 'hangar.bundle.cjs', 'hangar.snapshot.blob']) {
    if (existsSync(join(from, f))) cpSync(join(from, f), join(to, f), { preserveTimestamps: true });
  }
  const bin = join(dir, 'bin', 'hangar');
  const v = spawnSync(bin, ['version', '--json'], { encoding: 'utf8' });
  const startedFrom = v.status === 0 ? (JSON.parse(v.stdout) as { started_from: string }).started_from : 'unknown';
  if (startedFrom !== 'snapshot') console.error(`note: the CLI starts from ${startedFrom}, not its startup snapshot: run \`npm run build\` first for the numbers users get`);
  return { bin, startedFrom };
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'hangar-bench-deploy-'));
  const dataDir = join(work, 'data');
  const app = join(work, 'app');
  cpSync(join(repo, 'examples', 'hello-python'), app, { recursive: true });
  // `# syntax=docker/dockerfile:1` makes BuildKit fetch that frontend image
  // from Docker Hub, which is unreachable here; the frontend built into the
  // engine implements everything this Dockerfile uses. The directive is a
  // comment to buildah. Both sides build this same edited file.
  const dockerfile = join(app, 'Dockerfile');
  writeFileSync(dockerfile, readFileSync(dockerfile, 'utf8').replace(/^# syntax=.*\n/, ''));
  const daemon = await startDaemon({ dataDir, listen: '127.0.0.1:0', logger: createLogger(() => {}) });
  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const host = new URL(daemon.url).host;
  const henv = { ...process.env, HANGAR_API_URL: daemon.url, HANGAR_ACCESS_TOKEN: token, HANGAR_CONFIG_DIR: join(work, 'cli'), NO_COLOR: '1' };
  const cli = installCli(join(work, 'install'));
  const hangar = (args: string[], marker?: RegExp) => timed(cli.bin, args, henv, app, marker);
  let dockerd: ReturnType<typeof spawn> | undefined;
  let dockerBuilder = 'buildkit';
  try {
    await fetch(`${daemon.url}/v1/apps`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ app_name: 'hello-python', org_slug: 'personal' }) });
    console.error('warming up: first Hangar deploy (base image, apt, first boot)');
    const first = await hangar(['deploy']);
    if (first.code !== 0) throw new Error(`first deploy failed:\n${first.out.slice(-2000)}`);

    // Docker: its own engine in this temp dir, base image from Hangar's mirror.
    const sock = join(work, 'docker.sock');
    dockerd = spawn('dockerd', ['--iptables=false', '--bridge=none', '--data-root', join(work, 'docker'), '--exec-root', join(work, 'docker-exec'), '-H', `unix://${sock}`, '--pidfile', join(work, 'docker.pid')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const denv = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_BUILDKIT: '1', DOCKER_CONFIG: join(work, 'dockercfg') };
    for (let i = 0; !existsSync(sock) || spawnSync(DOCKER, ['version'], { env: denv }).status !== 0; i++) {
      if (i > 60) throw new Error('dockerd did not start');
      await sleep(500);
    }
    const mirrored = `${host}/docker.io/library/debian:bookworm-slim`;
    spawnSync('mkdir', ['-p', join(work, 'dockercfg')]);
    writeFileSync(join(work, 'dockercfg', 'config.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from(`hangar:${token}`).toString('base64') } } }));
    // Async: the registry answering this pull runs in this very process.
    for (const args of [['pull', mirrored], ['tag', mirrored, 'debian:bookworm-slim']]) {
      const r = await timed(DOCKER, args, denv, work);
      if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.out}`);
    }
    const dockerBuild = () => timed(DOCKER, ['build', '--progress=plain', '--network', 'host', '-t', 'bench-hello:latest', '.'], denv, app);
    console.error(`warming up: first docker build (${DOCKER}, DOCKER_BUILDKIT=1)`);
    let dw = await dockerBuild();
    if (dw.code !== 0) {
      // Say why, then measure the classic builder rather than nothing.
      const why = dw.out.trim().split('\n').slice(-1)[0] ?? '';
      console.error(`BuildKit build failed (${why}); falling back to the classic builder`);
      denv.DOCKER_BUILDKIT = '0';
      dockerBuilder = `classic (BuildKit failed: ${why.slice(0, 200)})`;
      dw = await dockerBuild();
    }
    if (dw.code !== 0) throw new Error(`docker build failed:\n${dw.out.slice(-2000)}`);

    const hBuild: number[] = [];
    const hE2e: number[] = [];
    const dBuild: number[] = [];
    const hPhases: Array<Record<string, number>> = [];
    const builders = new Set<string>();
    let last: Timed | undefined;
    for (let i = 1; i <= runs; i++) {
      const greeting = `Hello from Hangar! bench ${i}-${Date.now()}`;
      // The one-line change, for Hangar.
      writeFileSync(join(app, 'greeting.py'), `GREETING = "${greeting}"\n`);
      const h = await hangar(['deploy'], /release v\d+:/);
      if (h.code !== 0) throw new Error(`deploy ${i} failed:\n${h.out.slice(-2000)}`);
      const status = JSON.parse((await hangar(['status', '--json'])).out.split('\n').filter((l) => l.startsWith('{') || l.startsWith(' ') || l.startsWith('}') || l.startsWith('[') || l.startsWith(']')).join('\n')) as {
        machines: Array<{ host_ports: Record<string, number> }>;
      };
      const body = await (await fetch(`http://127.0.0.1:${status.machines[0]!.host_ports['8080']}/`)).text();
      if (!body.includes(greeting)) throw new Error(`run ${i}: the new version does not answer: ${body}`);
      hBuild.push(h.mark!);
      hE2e.push(h.total);
      hPhases.push(phases(h));
      last = h;
      // The same change, for docker.
      writeFileSync(join(app, 'greeting.py'), `GREETING = "${greeting} docker"\n`);
      const d = await dockerBuild();
      if (d.code !== 0) throw new Error(`docker build ${i} failed:\n${d.out.slice(-2000)}`);
      dBuild.push(d.total);
      builders.add(dockerBuilderOf(d.out));
      const ph = Object.entries(hPhases.at(-1)!).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
      console.log(`run ${i}: hangar build+push ${h.mark!.toFixed(2)} s (${ph}), deploy end-to-end ${h.total.toFixed(2)} s; docker build ${d.total.toFixed(2)} s (${dockerBuilderOf(d.out)})`);
    }
    if (trace && last) for (const [t, l] of last.lines) console.log(`  ${t.toFixed(3)}  ${l.slice(0, 160)}`);
    if (dockerBuilder === 'buildkit' && (builders.size !== 1 || !builders.has('buildkit'))) dockerBuilder = `unexpected: ${[...builders].join(', ')}`;
    const result = {
      bench: 'deploy',
      runs,
      hangar_build_median_s: +median(hBuild).toFixed(2),
      hangar_deploy_e2e_median_s: +median(hE2e).toFixed(2),
      docker_build_median_s: +median(dBuild).toFixed(2),
      rebuild_ratio: +(median(dBuild) / median(hBuild)).toFixed(2),
      hangar_build_phases_median_s: Object.fromEntries(PHASES.map(([k]) => [k, +median(hPhases.map((p) => p[k] ?? 0)).toFixed(2)])),
      hangar_builder: process.env.HANGAR_BUILDER ?? 'native',
      hangar_cli_started_from: cli.startedFrom,
      docker_builder: dockerBuilder,
      docker_cli: DOCKER,
    };
    console.log(`medians: hangar build+push ${result.hangar_build_median_s} s, hangar deploy ${result.hangar_deploy_e2e_median_s} s, docker build ${result.docker_build_median_s} s`);
    console.log(JSON.stringify(result));
  } finally {
    if (dockerd) {
      dockerd.kill('SIGTERM');
      await new Promise((r) => dockerd!.once('close', r));
    }
    for (const mp of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(work + '/')).reverse()) spawnSync('umount', ['-l', mp]);
    for (const m of daemon.machines.list('hello-python')) await daemon.machines.destroy('hello-python', m.id, true).catch(() => undefined);
    await daemon.close();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
