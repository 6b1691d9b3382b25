import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/cli.js';
import { deployEnv, httpGet, until } from './helpers.js';

test('the example app deploys from scratch: FROM debian:bookworm-slim, multi-stage, non-root', { timeout: 900_000 }, async () => {
  const env = await deployEnv();
  const dir = mkdtempSync(join(tmpdir(), 'hangar-example-'));
  try {
    cpSync(join(repoRoot, 'examples', 'hello-python'), dir, { recursive: true });
    assert.equal((await env.t.api('POST', '/v1/apps', { app_name: 'hello-python', org_slug: 'personal' })).status, 201);
    const r = await env.cli(['deploy'], dir);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.match(r.stderr, /FROM debian:bookworm-slim/);
    assert.match(r.stdout, /Release v1 of hello-python is live/);
    const s = (await env.t.api('GET', '/v1/apps/hello-python/status')).body;
    assert.equal(s.machines.length, 1);
    const port = s.machines[0].host_ports['8080'];
    const res = await until(async () => (await httpGet(port).catch(() => undefined)), 30_000, 'the app to answer');
    assert.equal(res.status, 200);
    assert.match(res.body, /^Hello from Hangar! v1 \(machine [0-9a-f]+, user 10001\)$/m, 'runs as the non-root USER');
    const info = JSON.parse((await httpGet(port, '/env')).body);
    assert.equal(info.FLY_PROCESS_GROUP, 'app');
    assert.equal(info.APP_VERSION, '1');
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await env.close();
  }
});

test('hangar launch writes hangar.toml from the Dockerfile and creates the app', { timeout: 60_000 }, async () => {
  const env = await deployEnv();
  const dir = mkdtempSync(join(tmpdir(), 'hangar-launch-'));
  try {
    cpSync(join(repoRoot, 'examples', 'hello-python'), dir, { recursive: true });
    rmSync(join(dir, 'hangar.toml'));
    const r = await env.cli(['launch', '--name', 'launched'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(dir, 'hangar.toml')));
    const toml = readFileSync(join(dir, 'hangar.toml'), 'utf8');
    assert.match(toml, /app = "launched"/);
    assert.match(toml, /internal_port = 8080/);
    assert.equal((await env.t.api('GET', '/v1/apps')).body.apps.filter((a: { name: string }) => a.name === 'launched').length, 1);
    const again = await env.cli(['launch', '--name', 'launched2'], dir);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /hangar.toml already exists/);
    const empty = mkdtempSync(join(tmpdir(), 'hangar-launch-'));
    const none = await env.cli(['launch'], empty);
    rmSync(empty, { recursive: true, force: true });
    assert.match(none.stderr, /no Dockerfile/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await env.close();
  }
});
