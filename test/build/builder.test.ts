import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deployEnv, tarNames } from '../deploy/helpers.js';

const SECRET = 'S3CRET-build-token-4f1c9a';

const DOCKERFILE = `FROM debian:bookworm-slim AS base
ARG GREETING=hi
RUN echo "greeting=$GREETING" > /greeting

FROM base AS withsecret
RUN --mount=type=secret,id=apitoken test -s /run/secrets/apitoken && sha256sum /run/secrets/apitoken | cut -d' ' -f1 > /secret.sha

FROM base AS other
RUN echo other > /other.txt

FROM withsecret AS final
RUN echo final > /final.txt
USER nobody
ENV MODE=final LANG=C.UTF-8
EXPOSE 9000
CMD ["cat", "/final.txt"]
`;

/** The image config of repo:reference in the daemon's registry. */
function imageConfig(env: Awaited<ReturnType<typeof deployEnv>>, repo: string, reference: string) {
  const reg = env.t.daemon.registry;
  const m = reg.resolveManifest(repo, reference)!;
  const manifest = JSON.parse(readFileSync(reg.blobPath(m.digest)!, 'utf8')) as { config: { digest: string } };
  return JSON.parse(readFileSync(reg.blobPath(manifest.config.digest)!, 'utf8')) as {
    config: { User?: string; Env?: string[]; ExposedPorts?: Record<string, object>; Cmd?: string[] };
    history: Array<{ created_by?: string; empty_layer?: boolean }>;
  };
}

test('builder: flags, layer cache, secrets never in a layer, failed builds change nothing', { timeout: 600_000 }, async () => {
  const env = await deployEnv();
  const dir = mkdtempSync(join(tmpdir(), 'hangar-build-'));
  try {
    assert.equal((await env.t.api('POST', '/v1/apps', { app_name: 'bt', org_slug: 'personal' })).status, 201);
    writeFileSync(join(dir, 'Dockerfile'), DOCKERFILE);
    writeFileSync(join(dir, 'hangar.toml'), 'app = "bt"\n[build]\n  [build.args]\n    GREETING = "from-config"\n');
    const flags = ['--build-only', '--push', '--build-arg', 'GREETING=hello-arg', '--build-secret', `apitoken=${SECRET}`];

    // 1. multi-stage, build arg, build secret, label.
    let r = await env.cli(['deploy', ...flags, '--image-label', 'v1'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), new RegExp(`^${env.registryHost}/bt:v1@sha256:[a-f0-9]{64}$`));
    assert.match(r.stderr, /STEP/);
    assert.match(r.stderr, /with Hangar's builder/);
    assert.ok(!r.stderr.includes(SECRET) && !r.stdout.includes(SECRET), 'the secret never appears in build output');
    const layers = env.layers('bt', 'v1');
    for (const l of layers) assert.ok(!l.includes(Buffer.from(SECRET)), 'no layer contains the secret');
    const all = Buffer.concat(layers);
    assert.ok(all.includes(Buffer.from('greeting=hello-arg\n')), '--build-arg wins over [build.args]');
    const sha = createHash('sha256').update(SECRET).digest('hex');
    assert.ok(all.includes(Buffer.from(sha)), 'the RUN step saw the secret (its hash is in the image)');
    const names = layers.flatMap(tarNames);
    assert.ok(names.some((n) => n.endsWith('final.txt')));
    assert.deepEqual(names.filter((n) => n.includes('run/secrets/') && !n.endsWith('run/secrets/')), [], 'the secret mount left no file');
    const cfg = imageConfig(env, 'bt', 'v1');
    assert.equal(cfg.config.User, 'nobody');
    assert.ok(cfg.config.Env!.includes('MODE=final') && cfg.config.Env!.includes('LANG=C.UTF-8'), JSON.stringify(cfg.config.Env));
    assert.deepEqual(cfg.config.ExposedPorts, { '9000/tcp': {} });
    assert.deepEqual(cfg.config.Cmd, ['cat', '/final.txt']);
    assert.deepEqual(cfg.history.slice(-2).map((h) => [h.created_by, h.empty_layer]), [['EXPOSE 9000', true], ['CMD ["cat", "/final.txt"]', true]]);

    // 2. --build-target picks another stage; default tag is deployment-<UTC timestamp>.
    r = await env.cli(['deploy', '--build-only', '--push', '--build-target', 'other'], dir);
    assert.equal(r.code, 0, r.stderr);
    const m = new RegExp(`^${env.registryHost}/bt:(deployment-\\d{8}-\\d{6}(?:-\\d+)?)@sha256:`).exec(r.stdout.trim());
    assert.ok(m, r.stdout);
    const otherNames = env.layers('bt', m[1]!).flatMap(tarNames);
    assert.ok(otherNames.some((n) => n.endsWith('other.txt')));
    assert.ok(!otherNames.some((n) => n.endsWith('final.txt')));
    assert.ok(env.layers('bt', m[1]!).every((l) => !l.includes(Buffer.from('greeting=hello-arg'))), 'config build args apply: GREETING from hangar.toml');

    // 3. The layer cache is kept between builds (an unchanged rebuild is the same image); --no-cache skips it.
    r = await env.cli(['deploy', ...flags, '--image-label', 'v1-again'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Using cache/);
    assert.equal(env.t.daemon.registry.resolveManifest('bt', 'v1-again')!.digest, env.t.daemon.registry.resolveManifest('bt', 'v1')!.digest);
    r = await env.cli(['deploy', ...flags, '--image-label', 'v1-nocache', '--no-cache'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /Using cache/);

    // The same Dockerfile through buildah (HANGAR_BUILDER=buildah): the same config.
    process.env.HANGAR_BUILDER = 'buildah';
    try {
      r = await env.cli(['deploy', ...flags, '--image-label', 'v1-buildah'], dir);
    } finally {
      delete process.env.HANGAR_BUILDER;
    }
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /with buildah/);
    const byBuildah = imageConfig(env, 'bt', 'v1-buildah');
    const { Labels: buildahLabels, ...buildahConfig } = byBuildah.config as typeof byBuildah.config & { Labels?: Record<string, string> };
    assert.deepEqual(Object.keys(buildahLabels ?? {}).filter((k) => k !== 'io.buildah.version'), []);
    assert.deepEqual(cfg.config, buildahConfig);
    assert.deepEqual(cfg.history.map((h) => Boolean(h.empty_layer)), byBuildah.history.map((h) => Boolean(h.empty_layer)));

    // buildah's storage keeps the app's latest build (the next one's cache), not every earlier one.
    const buildahImages = () => {
      const driver = process.env.HANGAR_BUILD_STORAGE_DRIVER ?? 'overlay';
      const root = join(env.t.daemon.dataDir, 'build');
      const listed = execFileSync('buildah', ['--root', join(root, 'storage'), '--runroot', join(root, 'run'), '--storage-driver', driver, 'images', '--format', '{{.Name}}:{{.Tag}}'], { encoding: 'utf8' });
      return listed.split('\n').filter((l) => l.endsWith(':v1-buildah') || l.endsWith(':v2-buildah'));
    };
    process.env.HANGAR_BUILDER = 'buildah';
    try {
      r = await env.cli(['deploy', ...flags, '--image-label', 'v2-buildah'], dir);
    } finally {
      delete process.env.HANGAR_BUILDER;
    }
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Using cache/, "the second buildah build used the first one's layers");
    for (let i = 0; i < 100 && buildahImages().length > 1; i++) await new Promise((z) => setTimeout(z, 100));
    assert.deepEqual(buildahImages(), [`${env.registryHost}/bt:v2-buildah`]);

    // 4. A failing build shows the failing step and its output, pushes nothing, deploys nothing.
    writeFileSync(join(dir, 'Dockerfile.fail'), 'FROM debian:bookworm-slim\nRUN echo about-to-fail && exit 3\n');
    const tagsBefore = (await env.t.api('GET', '/v2/bt/tags/list')).body;
    r = await env.cli(['deploy', '--dockerfile', 'Dockerfile.fail'], dir);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /the build failed at .*RUN echo about-to-fail && exit 3/);
    assert.match(r.stderr, /about-to-fail/);
    assert.match(r.stderr, /nothing was deployed/);
    assert.deepEqual((await env.t.api('GET', '/v2/bt/tags/list')).body, tagsBefore);
    assert.deepEqual((await env.t.api('GET', '/v1/apps/bt/releases')).body.releases, []);

    // 5. Bad flags are refused before anything is sent.
    r = await env.cli(['deploy', '--build-only', '--image-label', 'bad label'], dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--image-label/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await env.close();
  }
});
