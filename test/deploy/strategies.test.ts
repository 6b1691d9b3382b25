import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deployEnv, httpGet, until, PERL_DOCKERFILE, PERL_SERVER } from './helpers.js';

test('strategies immediate, canary, bluegreen; --strategy, --detach; unknown strategy refused', { timeout: 900_000 }, async () => {
  const env = await deployEnv();
  const dir = mkdtempSync(join(tmpdir(), 'hangar-strat-'));
  const config = (v: string) =>
    writeFileSync(join(dir, 'hangar.toml'), `app = "st"\n[env]\n  VERSION = "${v}"\n[http_service]\n  internal_port = 8080\n[checks.alive]\n  type = "tcp"\n  port = 8080\n`);
  const machines = async () => (await env.t.api('GET', '/v1/apps/st/status')).body.machines as Array<{ id: string; release_version: string; host_ports: Record<string, number> }>;
  try {
    assert.equal((await env.t.api('POST', '/v1/apps', { app_name: 'st', org_slug: 'personal' })).status, 201);
    writeFileSync(join(dir, 'Dockerfile'), PERL_DOCKERFILE);
    writeFileSync(join(dir, 'server.pl'), PERL_SERVER);
    config('1');
    const ref = (await env.cli(['deploy', '--build-only', '--push'], dir)).stdout.trim();
    assert.match(ref, /@sha256:/);

    let r = await env.cli(['deploy', '--image', ref, '--strategy', 'immediate'], dir);
    assert.equal(r.code, 0, r.stderr);
    const first = (await machines())[0]!;

    config('2');
    r = await env.cli(['deploy', '--image', ref, '--strategy', 'canary'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /canary .* passed/);
    let ms = await machines();
    assert.equal(ms.length, 1, 'the canary is gone');
    assert.equal(ms[0]!.id, first.id, 'canary then rolling updates the machine in place');
    assert.equal(ms[0]!.release_version, '2');

    config('3');
    r = await env.cli(['deploy', '--image', ref, '--strategy', 'bluegreen'], dir);
    assert.equal(r.code, 0, r.stderr);
    ms = await machines();
    assert.equal(ms.length, 1);
    assert.notEqual(ms[0]!.id, first.id, 'bluegreen replaces the blue machine');
    const body = await until(async () => (await httpGet(ms[0]!.host_ports['8080']!).catch(() => undefined))?.body, 20_000, 'green to answer').catch(async (e) => {
      const logs = (await env.t.api('GET', '/v1/apps/st/logs?limit=200')).body as Array<{ machine_id: string; message: string }>;
      throw new Error(`${(e as Error).message}; machines ${JSON.stringify(await machines())}; logs:\n${logs.map((l) => `${l.machine_id} ${l.message}`).join('\n')}`);
    });
    assert.equal(body, 'version 3\n');

    config('4');
    r = await env.cli(['deploy', '--image', ref, '--detach'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Release v4 of st started in the background/);
    await until(async () => {
      const rel = (await env.t.api('GET', '/v1/apps/st/releases')).body.releases[0];
      return rel.status === 'complete' ? rel : undefined;
    }, 120_000, 'the detached release to complete');
    assert.equal((await machines())[0]!.release_version, '4');

    r = await env.cli(['deploy', '--image', ref, '--strategy', 'yolo'], dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /strategy: must be one of rolling, immediate, canary, bluegreen/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await env.close();
  }
});
