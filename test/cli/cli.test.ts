import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, statSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestDaemon } from '../helpers/daemon.js';
import { hangar } from '../helpers/cli.js';

test('CLI: login stores 0600 credentials; apps, orgs and tokens round-trip; --json prints only JSON', async () => {
  const t = await startTestDaemon();
  const cfg = mkdtempSync(join(tmpdir(), 'hangar-cfg-'));
  const env = { HANGAR_API_URL: t.daemon.url, HANGAR_CONFIG_DIR: cfg, HANGAR_ACCESS_TOKEN: '' };
  try {
    const login = await hangar(['auth', 'login', '--data-dir', t.dataDir], env);
    assert.equal(login.code, 0, login.stderr);
    assert.equal(statSync(join(cfg, 'config.json')).mode & 0o777, 0o600);
    assert.equal(JSON.parse(readFileSync(join(cfg, 'config.json'), 'utf8')).access_token, t.adminToken);

    assert.equal((await hangar(['apps', 'create', 'hello'], env)).code, 0);
    const list = await hangar(['apps', 'list', '--json'], env);
    assert.equal(list.code, 0);
    const apps = JSON.parse(list.stdout);
    assert.deepEqual(apps.map((a: { name: string }) => a.name), ['hello']);
    assert.equal(list.stderr, '');

    const human = await hangar(['apps', 'list'], env);
    assert.match(human.stdout, /^NAME\s+ORG\s+STATUS/m);
    assert.match(human.stdout, /hello\s+personal/);

    assert.equal((await hangar(['orgs', 'create', 'acme'], env)).code, 0);
    const tok = await hangar(['tokens', 'create', '-o', 'acme', '--name', 'ci'], env);
    assert.equal(tok.code, 0);
    const orgToken = tok.stdout.trim();
    assert.match(orgToken, /^hgr_/);
    // The org token sees no apps of `personal`.
    const other = await hangar(['apps', 'list', '--json'], { ...env, HANGAR_ACCESS_TOKEN: orgToken });
    assert.deepEqual(JSON.parse(other.stdout), []);
  } finally {
    await t.close();
    rmSync(cfg, { recursive: true, force: true });
  }
});

test('CLI: errors are one clear line with a non-zero exit, never a stack trace', async () => {
  const t = await startTestDaemon();
  const env = { HANGAR_API_URL: t.daemon.url, HANGAR_ACCESS_TOKEN: t.adminToken, HANGAR_CONFIG_DIR: mkdtempSync(join(tmpdir(), 'hangar-cfg-')) };
  try {
    const bad = await hangar(['apps', 'create', 'Bad_Name'], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^Error: invalid app name "Bad_Name"/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /);

    const missing = await hangar(['apps', 'destroy', 'nope'], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /app "nope" not found/);

    const unknown = await hangar(['frobnicate'], env);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);

    const badFlag = await hangar(['apps', 'list', '--bogus'], env);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /Unknown option '--bogus'/);

    const noToken = await hangar(['apps', 'list'], { ...env, HANGAR_ACCESS_TOKEN: '' });
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /hangar auth login/);
  } finally {
    await t.close();
  }
  // Daemon gone: the CLI says so and how to fix it.
  const down = await hangar(['apps', 'list'], env);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /cannot reach the Hangar daemon at .*is `hangar daemon` running/);
});

test('CLI: help lists commands; per-command help shows flags', async () => {
  const help = await hangar(['help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /apps create NAME/);
  assert.match(help.stdout, /machine run IMAGE/);
  const sub = await hangar(['machine', 'run', '--help']);
  assert.equal(sub.code, 0);
  assert.match(sub.stdout, /--entrypoint/);
});

test('CLI: hangar daemon refuses a bad --keep-rootfs-trees before touching its data dir', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-daemon-flag-'));
  try {
    const dataDir = join(dir, 'data');
    for (const [args, env] of [
      [['--keep-rootfs-trees', 'lots'], {}],
      [['--keep-rootfs-trees=-1'], {}],
      [[], { HANGAR_KEEP_ROOTFS_TREES: '99' }],
    ] as const) {
      const r = await hangar(['daemon', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--proxy-listen', '127.0.0.1:0', ...args], env);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--keep-rootfs-trees \(or HANGAR_KEEP_ROOTFS_TREES\) takes a whole number from 0 to 16/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(existsSync(dataDir), false, 'no data dir was created');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
