/**
 * Registry benchmark: push and pull a ~200 MB multi-layer image with skopeo
 * to Hangar's registry and to CNCF distribution (Debian's docker-registry),
 * alternating, fresh storage for every run. Prints per-run figures, medians,
 * and as the last line one JSON object with push_ratio and pull_ratio
 * (Hangar throughput / distribution throughput; > 1 means Hangar is faster).
 *
 *   npm run build && node dist/bench/registry/bench.js [--runs 5] [--mb 200]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import { makeTar } from '../../test/fixtures/tar-writer.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, mb: { type: 'string', default: '200' } } });
const RUNS = Number(values.runs);
const TOTAL_MB = Number(values.mb);
const HANGAR = fileURLToPath(new URL('../../../bin/hangar', import.meta.url));
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function writeBlob(dir: string, data: Buffer): string {
  const d = sha256(data);
  writeFileSync(join(dir, 'blobs', 'sha256', d.slice(7)), data);
  return d;
}

/** An OCI layout with 5 gzip layers (random data: skopeo passes them through unchanged). */
function makeImage(dir: string): number {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const sizes = [0.4, 0.25, 0.2, 0.1, 0.05].map((f) => Math.round(f * TOTAL_MB * 1024 * 1024));
  const layers = sizes.map((size, i) => {
    const tar = makeTar([{ name: `layer${i}/`, type: 'dir' }, { name: `layer${i}/data.bin`, body: randomBytes(size) }]);
    const gz = gzipSync(tar, { level: 1 });
    return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: writeBlob(dir, gz), size: gz.length, diffId: sha256(tar) };
  });
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: writeBlob(dir, config), size: config.length },
      layers: layers.map(({ diffId: _d, ...l }) => l),
    }),
  );
  const md = writeBlob(dir, manifest);
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: md, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }),
  );
  return layers.reduce((s, l) => s + l.size, 0) + config.length + manifest.length;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function exec(file: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    p.on('exit', (code) => {
      if (code !== 0) reject(new Error(`${file} ${args.join(' ')} failed: ${err}`));
      else resolve(Number(process.hrtime.bigint() - t0) / 1e9);
    });
  });
}

async function waitHttp(url: string, ok: (s: number) => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      if (ok((await fetch(url)).status)) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not come up`);
}

interface Server {
  host: string;
  pid: number;
  creds?: string;
  repo: string;
  stop(): Promise<void>;
}

function stopper(p: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (p.exitCode !== null) return resolve();
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
}

async function startHangar(dir: string): Promise<Server> {
  const port = await freePort();
  const p = spawn(process.execPath, [HANGAR, 'daemon', '--data-dir', dir, '--listen', `127.0.0.1:${port}`, '--proxy-listen', '127.0.0.1:0'], {
    stdio: 'ignore',
    env: { ...process.env, HANGAR_LOG_LEVEL: 'error' },
  });
  await waitHttp(`http://127.0.0.1:${port}/v2/`, (s) => s === 401);
  const admin = readFileSync(join(dir, 'admin-token'), 'utf8').trim();
  const res = await fetch(`http://127.0.0.1:${port}/v1/apps`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ app_name: 'bench', org_slug: 'personal' }),
  });
  if (res.status !== 201) throw new Error(`create app: ${res.status}`);
  return { host: `127.0.0.1:${port}`, pid: p.pid!, creds: `hangar:${admin}`, repo: 'bench/image', stop: stopper(p) };
}

async function startDistribution(dir: string): Promise<Server> {
  const port = await freePort();
  const cfg = join(dir, 'config.yml');
  mkdirSync(join(dir, 'storage'), { recursive: true });
  writeFileSync(
    cfg,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'storage')}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const p = spawn('docker-registry', ['serve', cfg], { stdio: 'ignore' });
  await waitHttp(`http://127.0.0.1:${port}/v2/`, (s) => s === 200);
  return { host: `127.0.0.1:${port}`, pid: p.pid!, repo: 'bench/image', stop: stopper(p) };
}

/** CPU seconds (user + system) the server process has used: less noisy than wall time on a shared machine. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

interface Sample {
  push: number;
  pull: number;
  pushCpu: number;
  pullCpu: number;
}

async function measure(kind: 'hangar' | 'distribution', layout: string, work: string): Promise<Sample> {
  const dir = mkdtempSync(join(work, `${kind}-`));
  const server = kind === 'hangar' ? await startHangar(join(dir, 'data')) : await startDistribution(dir);
  try {
    const creds = (flag: string) => (server.creds ? [`--${flag}-creds`, server.creds] : []);
    const c0 = cpuSeconds(server.pid);
    const push = await exec('skopeo', ['copy', '--dest-tls-verify=false', ...creds('dest'), `oci:${layout}:latest`, `docker://${server.host}/${server.repo}:v1`]);
    const c1 = cpuSeconds(server.pid);
    const pull = await exec('skopeo', ['copy', '--src-tls-verify=false', ...creds('src'), `docker://${server.host}/${server.repo}:v1`, `oci:${join(dir, 'pulled')}:v1`]);
    const c2 = cpuSeconds(server.pid);
    return { push, pull, pushCpu: c1 - c0, pullCpu: c2 - c1 };
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'hangar-bench-registry-'));
  try {
    const layout = join(work, 'layout');
    const bytes = makeImage(layout);
    const mb = bytes / 1e6;
    console.log(`image: ${mb.toFixed(1)} MB in 5 layers; ${RUNS} alternating runs, fresh storage each run`);
    const t: Record<'hangar' | 'distribution', { push: number[]; pull: number[]; pushCpu: number[]; pullCpu: number[] }> = {
      hangar: { push: [], pull: [], pushCpu: [], pullCpu: [] },
      distribution: { push: [], pull: [], pushCpu: [], pullCpu: [] },
    };
    for (let i = 0; i < RUNS; i++) {
      const order: Array<'hangar' | 'distribution'> = i % 2 === 0 ? ['hangar', 'distribution'] : ['distribution', 'hangar'];
      for (const kind of order) {
        const r = await measure(kind, layout, work);
        t[kind].push.push(r.push);
        t[kind].pull.push(r.pull);
        t[kind].pushCpu.push(r.pushCpu);
        t[kind].pullCpu.push(r.pullCpu);
        console.log(
          `run ${i + 1} ${kind.padEnd(12)} push ${r.push.toFixed(2)} s (${(mb / r.push).toFixed(0)} MB/s, server cpu ${r.pushCpu.toFixed(2)} s)  ` +
            `pull ${r.pull.toFixed(2)} s (${(mb / r.pull).toFixed(0)} MB/s, server cpu ${r.pullCpu.toFixed(2)} s)`,
        );
      }
    }
    const m = {
      hangar_push_s: median(t.hangar.push),
      hangar_pull_s: median(t.hangar.pull),
      distribution_push_s: median(t.distribution.push),
      distribution_pull_s: median(t.distribution.pull),
    };
    const result = {
      push_ratio: Number((m.distribution_push_s / m.hangar_push_s).toFixed(3)),
      pull_ratio: Number((m.distribution_pull_s / m.hangar_pull_s).toFixed(3)),
      hangar_push_mb_s: Number((mb / m.hangar_push_s).toFixed(1)),
      distribution_push_mb_s: Number((mb / m.distribution_push_s).toFixed(1)),
      hangar_pull_mb_s: Number((mb / m.hangar_pull_s).toFixed(1)),
      distribution_pull_mb_s: Number((mb / m.distribution_pull_s).toFixed(1)),
      hangar_push_server_cpu_s: median(t.hangar.pushCpu),
      distribution_push_server_cpu_s: median(t.distribution.pushCpu),
      hangar_pull_server_cpu_s: median(t.hangar.pullCpu),
      distribution_pull_server_cpu_s: median(t.distribution.pullCpu),
      // Each run measures both servers back to back, so the per-run ratio cancels slow swings in machine load.
      paired_push_ratio_median: Number(median(t.hangar.push.map((h, i) => t.distribution.push[i]! / h)).toFixed(3)),
      paired_pull_ratio_median: Number(median(t.hangar.pull.map((h, i) => t.distribution.pull[i]! / h)).toFixed(3)),
      image_mb: Number(mb.toFixed(1)),
      runs: RUNS,
    };
    console.log(`median push: hangar ${m.hangar_push_s.toFixed(2)} s, distribution ${m.distribution_push_s.toFixed(2)} s`);
    console.log(`median pull: hangar ${m.hangar_pull_s.toFixed(2)} s, distribution ${m.distribution_pull_s.toFixed(2)} s`);
    console.log(JSON.stringify(result));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
