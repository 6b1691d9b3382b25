/**
 * Which decompressor to use for layers: times decompressing the bench image's
 * layers (gzip as stored; zstd made from the same tars) through the CLI
 * (igzip, zstd) vs in-process (node:zlib, fzstd). Decompression only, output
 * discarded, alternating runs. Run after bench/rootfs/run.sh has built the
 * image:  node dist/bench/rootfs/decompress.js [runs]
 */
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { createGunzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Decompress } from 'fzstd';

const root = process.env.HANGAR_ROOT ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const blobs = join(root, '.cache', 'bench', 'debian-python3-oci', 'blobs', 'sha256');
const runs = Number(process.argv[2] ?? 3);
const gz = readdirSync(blobs).map((f) => join(blobs, f)).filter((f) => statSync(f).size > 1e6).map((f) => readFileSync(f));
const zst = gz.map((g) => execFileSync('zstd', ['-q', '-c', '-3'], { input: gunzipSync(g), maxBuffer: 1 << 30 }));
const rawBytes = zst.reduce((n, z) => n + z.length, 0);

async function viaCli(file: string, args: string[], input: Buffer): Promise<number> {
  const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  let n = 0;
  const out = (async () => {
    for await (const c of child.stdout) n += (c as Buffer).length;
  })();
  await Promise.all([pipeline(Readable.from([input]), child.stdin), out]);
  return n;
}
async function viaZlib(input: Buffer): Promise<number> {
  let n = 0;
  await pipeline(Readable.from([input]), createGunzip({ chunkSize: 256 << 10 }), async (src) => {
    for await (const c of src) n += (c as Buffer).length;
  });
  return n;
}
function viaFzstd(input: Buffer): number {
  let n = 0;
  const d = new Decompress((c) => (n += c.length));
  for (let i = 0; i < input.length; i += 1 << 20) d.push(input.subarray(i, i + (1 << 20)));
  d.push(new Uint8Array(0), true);
  return n;
}

const modes: Record<string, (b: Buffer) => Promise<number> | number> = {
  'gzip igzip CLI': (b) => viaCli('igzip', ['-d', '-c'], b),
  'gzip node:zlib': viaZlib,
  'zstd CLI': (b) => viaCli('zstd', ['-d', '-c', '-q'], b),
  'zstd fzstd (JS)': viaFzstd,
};
const times: Record<string, number[]> = {};
for (let r = 0; r < runs; r++) {
  for (const [name, fn] of Object.entries(modes)) {
    const input = name.startsWith('gzip') ? gz : zst;
    const t0 = performance.now();
    for (const b of input) await fn(b);
    (times[name] ??= []).push(performance.now() - t0);
  }
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const [k, v] of Object.entries(times)) console.log(`${k.padEnd(18)} ${Math.round(med(v))} ms`);
console.log(
  JSON.stringify({
    bench: 'rootfs-decompress',
    zstd_bytes: rawBytes,
    ...Object.fromEntries(Object.entries(times).map(([k, v]) => [k.replace(/[^a-z0-9]+/gi, '_').replace(/_+$/, '').toLowerCase() + '_ms', Math.round(med(v))])),
  }),
);
