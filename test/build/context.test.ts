import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, readFileSync, symlinkSync, existsSync, readlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { DockerIgnore, planContext, contextTarStream, deploymentTag, isValidLabel, dockerHubBases } from '../../src/build/index.js';

test('.dockerignore patterns: globs, **, directories, exceptions, last match wins', () => {
  const ig = new DockerIgnore(
    ['# comment', '', '*.log', 'node_modules', '/build/', 'docs/**/*.md', '!docs/keep/README.md', '**/secret*', 'temp?', 'data/*', '!data/wanted.txt', '[ab].txt'].join('\n'),
  );
  const cases: Array<[string, boolean]> = [
    ['app.log', true],
    ['sub/app.log', false], // * stays in one segment
    ['node_modules', true],
    ['node_modules/x/index.js', true], // a matched directory excludes what is below it
    ['build/out.bin', true],
    ['src/build/x', false], // anchored at the context root
    ['docs/a.md', true], // ** matches zero segments
    ['docs/x/y/z.md', true],
    ['docs/keep/README.md', false], // exception
    ['docs/a.txt', false],
    ['deep/down/secret.key', true],
    ['secrets.env', true],
    ['temp1', true],
    ['temp12', false],
    ['data/x.bin', true],
    ['data/wanted.txt', false],
    ['a.txt', true],
    ['c.txt', false],
    ['Dockerfile', false],
  ];
  for (const [p, want] of cases) assert.equal(ig.ignores(p), want, p);
  const all = new DockerIgnore('*\n!src\n');
  assert.equal(all.ignores('README'), true);
  assert.equal(all.ignores('src/main.py'), false); // re-including a directory re-includes its contents
  assert.equal(new DockerIgnore('.\n').ignores('anything/at/all'), true);
});

test('planContext honours .dockerignore, walks into excluded dirs only for exceptions, always sends the Dockerfile', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctx-'));
  try {
    writeFileSync(join(dir, 'Dockerfile'), 'FROM scratch\n');
    writeFileSync(join(dir, '.dockerignore'), 'Dockerfile\n.dockerignore\n*.tmp\nvendor\nlogs\n!logs/keep.log\n');
    writeFileSync(join(dir, 'app.py'), 'print(1)\n');
    writeFileSync(join(dir, 'x.tmp'), 'junk');
    mkdirSync(join(dir, 'vendor/deep'), { recursive: true });
    writeFileSync(join(dir, 'vendor/deep/big.bin'), Buffer.alloc(1000));
    mkdirSync(join(dir, 'logs'));
    writeFileSync(join(dir, 'logs/a.log'), 'a');
    writeFileSync(join(dir, 'logs/keep.log'), 'k');
    mkdirSync(join(dir, 'src/' + 'n'.repeat(60) + '/' + 'm'.repeat(60)), { recursive: true });
    writeFileSync(join(dir, 'src/' + 'n'.repeat(60) + '/' + 'm'.repeat(60) + '/long.txt'), 'long name');
    symlinkSync('app.py', join(dir, 'link.py'));
    const plan = planContext(dir);
    const names = plan.entries.map((e) => e.name);
    assert.ok(names.includes('Dockerfile'), 'the Dockerfile is sent even when ignored');
    assert.ok(names.includes('.dockerignore'));
    assert.ok(names.includes('app.py'));
    assert.ok(names.includes('logs/keep.log'));
    for (const gone of ['x.tmp', 'vendor', 'vendor/deep/big.bin', 'logs/a.log']) assert.ok(!names.includes(gone), gone);
    assert.equal(plan.dockerfile, 'Dockerfile');

    // The tar stream extracts with GNU tar to the same tree.
    const out = mkdtempSync(join(tmpdir(), 'ctx-out-'));
    const seen: number[] = [];
    const chunks: Buffer[] = [];
    const s = contextTarStream(plan, (sent) => seen.push(sent));
    s.on('data', (c: Buffer) => chunks.push(c));
    // Awaited inside the try: the stream reads the files after this returns, and the finally removes them.
    await new Promise<void>((resolve, reject) => {
      s.on('error', reject);
      s.on('end', () => {
        try {
          const r = spawnSync('tar', ['-x', '-C', out, '-f', '-'], { input: Buffer.concat(chunks) });
          assert.equal(r.status, 0, r.stderr.toString());
          assert.equal(readFileSync(join(out, 'app.py'), 'utf8'), 'print(1)\n');
          assert.equal(readFileSync(join(out, 'src/' + 'n'.repeat(60) + '/' + 'm'.repeat(60) + '/long.txt'), 'utf8'), 'long name');
          assert.equal(readlinkSync(join(out, 'link.py')), 'app.py');
          assert.ok(!existsSync(join(out, 'vendor')));
          assert.equal(statSync(join(out, 'Dockerfile')).size, 13);
          assert.equal(seen.at(-1), plan.bytes);
          rmSync(out, { recursive: true, force: true });
          resolve();
        } catch (e) {
          reject(e);
        }
      });
    });
  } finally {
    // cleaned after the stream finished (the promise above); give it a tick
    setTimeout(() => rmSync(dir, { recursive: true, force: true }), 100);
  }
});

test('planContext: missing Dockerfile fails with what to do', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctx-'));
  try {
    assert.throws(() => planContext(dir), /no Dockerfile at .*--dockerfile/);
    writeFileSync(join(dir, 'Dockerfile.prod'), 'FROM scratch\n');
    assert.equal(planContext(dir, 'Dockerfile.prod').dockerfile, 'Dockerfile.prod');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('deployment tags are UTC timestamps, unique within the same second', () => {
  const now = new Date(Date.UTC(2025, 0, 2, 3, 4, 5));
  const taken = new Set<string>();
  const a = deploymentTag(now, (t) => taken.has(t));
  taken.add(a);
  const b = deploymentTag(now, (t) => taken.has(t));
  taken.add(b);
  const c = deploymentTag(now, (t) => taken.has(t));
  assert.equal(a, 'deployment-20250102-030405');
  assert.equal(b, 'deployment-20250102-030405-2');
  assert.equal(c, 'deployment-20250102-030405-3');
  assert.ok(isValidLabel('v1.2.3'));
  assert.ok(!isValidLabel('-bad'));
  assert.ok(!isValidLabel('has space'));
});

test('Docker Hub bases of a Dockerfile (for --build-local with docker)', () => {
  const df = 'FROM debian:bookworm-slim AS base\nFROM base AS build\nFROM --platform=linux/amd64 node:20 AS n\nFROM 127.0.0.1:5000/x/y:1\nFROM scratch\nFROM base\n';
  assert.deepEqual(dockerHubBases(df), ['debian:bookworm-slim', 'node:20']);
});
