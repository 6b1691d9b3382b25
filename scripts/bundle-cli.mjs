// Makes the CLI start fast (run by `npm run build`, after tsc):
// 1. Bundles the CLI (dist/src/cli/entry.js and what it imports) into one
//    CommonJS file, dist/src/cli/hangar.bundle.cjs, with Debian's esbuild.
//    Node loads one file much faster than the ~60 modules (zod's among them)
//    it replaces.
// 2. Evaluates that bundle into a V8 startup snapshot,
//    dist/src/cli/hangar.snapshot.blob (scripts/cli-snapshot.cjs), which
//    bin/hangar starts from: `hangar` then starts as fast as `node -e 0`.
// Both are optimisations only: without esbuild, or when the snapshot cannot
// be made or does not run, bin/hangar runs the bundle or the compiled CLI.
// The daemon is not bundled: `hangar daemon` runs from dist/ as compiled
// (it resolves worker scripts and assets relative to its own modules).
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';

const bundle = 'dist/src/cli/hangar.bundle.cjs';
const blob = 'dist/src/cli/hangar.snapshot.blob';
for (const f of [bundle, blob, `${bundle}.v8cache`, 'dist/src/cli/hangar.bundle.js']) rmSync(f, { force: true });

const esbuild = spawnSync(
  'esbuild',
  ['dist/src/cli/entry.js', '--bundle', '--platform=node', '--format=cjs', '--target=node20', '--external:better-sqlite3', '--log-level=warning', `--outfile=${bundle}`],
  { stdio: 'inherit' },
);
if (esbuild.error || esbuild.status !== 0) {
  console.error(`build: no CLI bundle (${esbuild.error ? 'esbuild is not installed' : `esbuild exit ${esbuild.status}`}); hangar runs unbundled, a little slower to start`);
  process.exit(0);
}

const snapshot = spawnSync(process.execPath, ['--snapshot-blob', blob, '--build-snapshot', 'scripts/cli-snapshot.cjs'], { encoding: 'utf8' });
// The snapshot must run, not only build: check it answers `hangar help`.
const check = snapshot.status === 0 ? spawnSync(process.execPath, ['--snapshot-blob', blob, 'help'], { encoding: 'utf8' }) : undefined;
if (!check || check.status !== 0 || !check.stdout.includes('Usage: hangar')) {
  rmSync(blob, { force: true });
  const why = (check ?? snapshot).stderr?.trim().split('\n').slice(-1)[0] ?? '';
  console.error(`build: no CLI startup snapshot (${why || 'it did not run'}); hangar runs the bundle, a little slower to start`);
}
