import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deployEnv, tarNames } from '../deploy/helpers.js';

test('--build-local (alias --local-only) builds with local buildah and pushes to Hangar', { timeout: 300_000 }, async () => {
  const env = await deployEnv();
  const dir = mkdtempSync(join(tmpdir(), 'hangar-local-'));
  const storage = mkdtempSync(join(tmpdir(), 'hangar-local-storage-'));
  try {
    assert.equal((await env.t.api('POST', '/v1/apps', { app_name: 'bl', org_slug: 'personal' })).status, 201);
    // The daemon seeds its mirror on its first build; a local build needs it seeded first.
    const seed = await env.cli(['images', 'seed'], dir);
    assert.equal(seed.code, 0, seed.stderr);
    assert.match(seed.stdout, /docker\.io\/library\/debian/);
    writeFileSync(join(dir, 'Dockerfile'), 'FROM debian:bookworm-slim\nRUN echo built-locally > /local.txt\n');
    // Keep buildah's local storage in the test's temp dir (vfs: no mounts left behind).
    writeFileSync(join(storage, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${storage}/graph"\nrunroot = "${storage}/run"\n`);
    const extra = { HANGAR_LOCAL_ENGINE: 'buildah', CONTAINERS_STORAGE_CONF: join(storage, 'storage.conf') };
    const r = await env.cli(['deploy', '-a', 'bl', '--local-only', '--build-only', '--push', '--image-label', 'local1'], dir, undefined, extra);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), new RegExp(`^${env.registryHost}/bl:local1@sha256:[a-f0-9]{64}$`));
    assert.match(r.stderr, /built .* locally with buildah and pushed it to Hangar/);
    assert.ok(env.layers('bl', 'local1').flatMap(tarNames).some((n) => n.endsWith('local.txt')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(storage, { recursive: true, force: true });
    await env.close();
  }
});
