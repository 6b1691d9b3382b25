import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deployEnv, httpGet, PERL_DOCKERFILE, PERL_SERVER, type DeployEnv } from './helpers.js';

interface MachineView { id: string; state: string; release_version: string | null; host_ports: Record<string, number>; group: string }

async function machines(env: DeployEnv, app: string): Promise<MachineView[]> {
  const r = await env.t.api('GET', `/v1/apps/${app}/status`);
  return r.body.machines as MachineView[];
}

function perlApp(dir: string, app: string, extra = ''): void {
  writeFileSync(join(dir, 'Dockerfile'), PERL_DOCKERFILE);
  writeFileSync(join(dir, 'server.pl'), PERL_SERVER);
  writeConfig(dir, app, { VERSION: '1' }, extra);
}

function writeConfig(dir: string, app: string, env: Record<string, string>, extra = ''): void {
  const envLines = Object.entries(env).map(([k, v]) => `  ${k} = "${v}"`).join('\n');
  writeFileSync(
    join(dir, 'hangar.toml'),
    `app = "${app}"\n[env]\n${envLines}\n${extra}\n[http_service]\n  internal_port = 8080\n  [[http_service.checks]]\n    path = "/healthz"\n    interval = "1s"\n    timeout = "2s"\n`,
  );
}

test('--build-only --push, then --image: same org deploys, another org is refused', { timeout: 600_000 }, async () => {
  const env = await deployEnv();
  const dir = mkdtempSync(join(tmpdir(), 'hangar-deploy-'));
  try {
    for (const a of ['pa', 'pb']) assert.equal((await env.t.api('POST', '/v1/apps', { app_name: a, org_slug: 'personal' })).status, 201);
    assert.equal((await env.t.api('POST', '/v1/orgs', { slug: 'other' })).status, 201);
    assert.equal((await env.t.api('POST', '/v1/apps', { app_name: 'oc', org_slug: 'other' })).status, 201);
    const otherToken = await env.orgToken('other');
    perlApp(dir, 'pa');

    const built = await env.cli(['deploy', '--build-only', '--push'], dir);
    assert.equal(built.code, 0, built.stderr);
    const ref = built.stdout.trim();
    assert.match(ref, new RegExp(`^${env.registryHost}/pa:deployment-\\d{8}-\\d{6}(-\\d+)?@sha256:[a-f0-9]{64}$`));
    assert.deepEqual((await env.t.api('GET', '/v1/apps/pa/releases')).body.releases, [], '--build-only deploys nothing');

    // Another org's token cannot run pa's image, even in its own app.
    const refused = await env.cli(['deploy', '--image', ref, '-a', 'oc'], dir, otherToken);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /belongs to an app of another organization/);
    assert.deepEqual(await machines(env, 'oc').catch(() => []), []);
    // ...nor pull it from the registry.
    const pull = await fetch(`${env.t.daemon.url}/v2/pa/manifests/latest`, { headers: { authorization: `Bearer ${otherToken}` } });
    assert.notEqual(pull.status, 200);

    // The same org deploys it into another app without building.
    const dep = await env.cli(['deploy', '--image', ref, '-a', 'pb'], dir);
    assert.equal(dep.code, 0, dep.stderr);
    assert.doesNotMatch(dep.stderr, /STEP/, 'no build happened');
    assert.match(dep.stdout, /Release v1 of pb is live/);
    const [m] = await machines(env, 'pb');
    assert.equal(m!.state, 'started');
    assert.equal((await httpGet(m!.host_ports['8080']!)).body, 'version 1\n');
    const rel = (await env.t.api('GET', '/v1/apps/pb/releases')).body.releases[0];
    assert.equal(rel.status, 'complete');
    assert.equal(rel.user, 'admin');
    assert.equal(`${rel.image}`.split('@')[1], ref.split('@')[1]);
    const shown = await env.cli(['image', 'show', '-a', 'pb', '--json'], dir);
    assert.equal(JSON.parse(shown.stdout).machines[0].digest, ref.split('@')[1]);
    const status = await env.cli(['status', '-a', 'pb'], dir);
    assert.match(status.stdout, /Release: v1 \(rolling/);
    assert.match(status.stdout, new RegExp(m!.id));
    const rels = await env.cli(['releases', '-a', 'pb', '--image'], dir);
    assert.match(rels.stdout, /v1\s+complete/);
    assert.ok(rels.stdout.includes(ref.split('@')[1]!));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await env.close();
  }
});

test('release_command failure keeps the old release; a failing health check stops a rolling deploy; rollback', { timeout: 900_000 }, async () => {
  const env = await deployEnv();
  const dir = mkdtempSync(join(tmpdir(), 'hangar-deploy-'));
  try {
    assert.equal((await env.t.api('POST', '/v1/apps', { app_name: 'rc', org_slug: 'personal' })).status, 201);
    perlApp(dir, 'rc', '[deploy]\n  strategy = "rolling"\n  max_unavailable = 1\n');
    const built = await env.cli(['deploy', '--build-only', '--push', '--image-label', 'base'], dir);
    assert.equal(built.code, 0, built.stderr);
    const ref = built.stdout.trim();

    // v1 by label (no digest), then a second machine.
    let r = await env.cli(['deploy', '--image', ref.split('@')[0]!], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /passed 1 health check/);
    // The label moves to a new build; scaling still runs the release's own digest.
    writeFileSync(join(dir, 'server.pl'), PERL_SERVER + '\n# a later build\n');
    const moved = await env.cli(['deploy', '--build-only', '--push', '--image-label', 'base'], dir);
    assert.equal(moved.code, 0, moved.stderr);
    assert.notEqual(moved.stdout.trim().split('@')[1], ref.split('@')[1]);
    r = await env.cli(['scale', 'count', '2'], dir);
    assert.equal(r.code, 0, r.stderr);
    let ms = await machines(env, 'rc');
    assert.equal(ms.length, 2);
    for (const m of (await env.t.api('GET', '/v1/apps/rc/machines')).body as { config: { image: string } }[]) {
      assert.equal(m.config.image.split('@')[1], ref.split('@')[1], 'scale pins the release digest, not the moved label');
    }
    for (const m of ms) assert.equal((await httpGet(m.host_ports['8080']!)).body, 'version 1\n');

    // v2: release_command fails → nothing changes.
    writeConfig(dir, 'rc', { VERSION: '2' }, `[deploy]\n  release_command = "sh -c 'echo migrating-now; exit 3'"\n`);
    r = await env.cli(['deploy', '--image', ref], dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /release_command .* exited with code 3/);
    assert.match(r.stderr, /previous release keeps serving/);
    assert.match(r.stderr, /migrating-now/, 'the release command output is shown');
    ms = await machines(env, 'rc');
    assert.equal(ms.length, 2, 'the temporary release machine is gone');
    for (const m of ms) {
      assert.equal(m.release_version, '1');
      assert.equal((await httpGet(m.host_ports['8080']!)).body, 'version 1\n');
    }

    // v3: the first machine fails its health check → the rollout stops there.
    writeConfig(dir, 'rc', { VERSION: '3', HEALTH: '500' }, '[deploy]\n  max_unavailable = 1\n');
    r = await env.cli(['deploy', '--image', ref, '--wait-timeout', '30s'], dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /did not pass its health checks within 30s/);
    assert.match(r.stderr, /answered 500/);
    assert.match(r.stderr, /0 machine\(s\) run the new release, 1 still run the previous one/);
    ms = await machines(env, 'rc');
    const versions = ms.map((m) => m.release_version).sort();
    assert.deepEqual(versions, ['1', '3']);
    const old = ms.find((m) => m.release_version === '1')!;
    assert.equal((await httpGet(old.host_ports['8080']!)).body, 'version 1\n', 'the untouched machine still serves v1');

    // Roll back to v1's image and config.
    r = await env.cli(['releases', 'rollback', '1'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Release v4 of rc is live/);
    ms = await machines(env, 'rc');
    for (const m of ms) {
      assert.equal(m.release_version, '4');
      assert.equal((await httpGet(m.host_ports['8080']!)).body, 'version 1\n');
    }
    const rels = (await env.t.api('GET', '/v1/apps/rc/releases')).body.releases as Array<{ version: number; status: string; description: string; reason: string | null }>;
    assert.deepEqual(rels.map((x) => [x.version, x.status]), [[4, 'complete'], [3, 'failed'], [2, 'failed'], [1, 'complete']]);
    assert.equal(rels[0]!.description, 'Rollback to v1');
    assert.match(rels[2]!.reason!, /release_command/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await env.close();
  }
});
