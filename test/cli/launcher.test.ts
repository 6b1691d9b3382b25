import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/shared/process.js';
import { repoRoot } from '../helpers/cli.js';

/**
 * bin/hangar, run as a command, starts the CLI from the startup snapshot
 * only while it is up to date, else from the bundle. Checked on a copy of
 * the launcher and a snapshot built here (the repository's own dist/ may be
 * rebuilt by others meanwhile).
 */
test('launcher: snapshot when fresh, bundle when the build is newer, through a symlink too', async () => {
  const root = mkdtempSync(join(tmpdir(), 'hangar-launcher-'));
  try {
    const cli = join(root, 'dist', 'src', 'cli');
    mkdirSync(join(root, 'bin'), { recursive: true });
    mkdirSync(cli, { recursive: true });
    copyFileSync(join(repoRoot, 'bin', 'hangar'), join(root, 'bin', 'hangar'));
    copyFileSync(join(repoRoot, 'dist', 'src', 'cli', 'hangar.bundle.cjs'), join(cli, 'hangar.bundle.cjs'));
    copyFileSync(join(repoRoot, 'dist', 'src', 'cli', 'bin.js'), join(cli, 'bin.js'));
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(cli, 'bin.js'), old, old);
    // The launcher is an ES module to node: it needs the package's "type".
    copyFileSync(join(repoRoot, 'package.json'), join(root, 'package.json'));
    await run(process.execPath, ['--snapshot-blob', join(cli, 'hangar.snapshot.blob'), '--build-snapshot', join(repoRoot, 'scripts', 'cli-snapshot.cjs')], { cwd: root });

    const startedFrom = async (bin: string) => (JSON.parse((await run(bin, ['version', '--json'])).stdout) as { started_from: string }).started_from;
    assert.equal(await startedFrom(join(root, 'bin', 'hangar')), 'snapshot');
    symlinkSync(join(root, 'bin', 'hangar'), join(root, 'hangar-link'));
    assert.equal(await startedFrom(join(root, 'hangar-link')), 'snapshot');
    // A command run from the snapshot does real work: a usage error with its message and code.
    const bad = await run(join(root, 'bin', 'hangar'), ['apps', 'create'], { allowFailure: true, env: { ...process.env, HANGAR_API_URL: 'http://127.0.0.1:1' } });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Error: /);
    assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');

    // The compiled CLI is newer than the snapshot (`tsc` ran since it was made): not the snapshot.
    const older = new Date(Date.now() - 120_000);
    utimesSync(join(cli, 'hangar.snapshot.blob'), older, older);
    assert.equal(await startedFrom(join(root, 'bin', 'hangar')), 'bundle');
    assert.equal(await startedFrom(join(root, 'hangar-link')), 'bundle');
    // `node bin/hangar` never uses the snapshot.
    utimesSync(join(cli, 'hangar.snapshot.blob'), new Date(), new Date());
    assert.equal(JSON.parse((await run(process.execPath, [join(root, 'bin', 'hangar'), 'version', '--json'])).stdout).started_from, 'bundle');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
