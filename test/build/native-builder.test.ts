import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deployEnv, tarNames, type DeployEnv } from '../deploy/helpers.js';
import { pushBusybox } from '../helpers/machines.js';
import { buildTree, resolveImage } from '../../src/rootfs/convert.js';
import { LocalStoreSource } from '../../src/rootfs/source.js';

/**
 * Hangar's native builder against the real thing: the same Dockerfile built
 * by buildah must give the same image (config and every file's type, mode,
 * owner and content), and hostile Dockerfiles and contexts must not reach
 * the host.
 */

const PARITY = `ARG BASE=debian:bookworm-slim
FROM \${BASE} AS build
WORKDIR /src
COPY app/ ./
COPY *.txt notes/
RUN mkdir -p /out && cp -a /src/. /out/ && echo built > /out/built.flag && ln -s built.flag /out/link

FROM debian:bookworm-slim
RUN groupadd --gid 4400 extra && useradd --uid 4321 --create-home --groups extra appuser
COPY --from=build --chown=appuser:appuser /out/ /srv/app/
COPY --chmod=0750 run.sh /usr/local/bin/run
RUN rm -f /etc/motd && rm -rf /var/log/apt && mkdir /var/log/apt && touch /var/log/apt/new && mkfifo /srv/fifo
ENV APP_HOME=/srv/app
WORKDIR $APP_HOME/data
LABEL org.example.k="v 1"
EXPOSE 8000/udp 9000
STOPSIGNAL SIGINT
VOLUME /srv/app/data
HEALTHCHECK --interval=5s CMD ["/usr/local/bin/run", "check"]
SHELL ["/bin/bash", "-c"]
RUN echo "$APP_HOME $HOME $(id -u)" > /shell.txt
USER appuser
RUN echo "$HOME $(id -u):$(id -g) $(id -G)" > /home/appuser/who.txt
ENTRYPOINT ["/usr/local/bin/run"]
CMD ["serve"]
`;

function writeContext(dir: string): void {
  writeFileSync(join(dir, 'Dockerfile'), PARITY);
  mkdirSync(join(dir, 'app', 'lib'), { recursive: true });
  writeFileSync(join(dir, 'app', 'main.py'), 'print("hi")\n');
  writeFileSync(join(dir, 'app', 'lib', 'util.py'), 'X = 1\n');
  chmodSync(join(dir, 'app', 'lib'), 0o700);
  writeFileSync(join(dir, 'a.txt'), 'a\n');
  writeFileSync(join(dir, 'b.txt'), 'b\n');
  writeFileSync(join(dir, 'run.sh'), '#!/bin/sh\necho run "$@"\n');
  writeFileSync(join(dir, 'hangar.toml'), 'app = "nb"\n');
}

/** The tag in `host/app:tag@sha256:…` as `deploy --build-only` prints it. */
const tagOf = (stdout: string) => /\/[a-z0-9-]+:([^@\s]+)@/.exec(stdout)![1]!;

interface ImageView {
  config: Record<string, unknown>;
  tree: Map<string, string>;
}

/** Flatten repo:tag with the rootfs applier (what machines boot) and describe every entry but its times. */
async function flatten(env: DeployEnv, repo: string, tag: string, into: string): Promise<ImageView> {
  const reg = env.t.daemon.registry;
  const src = new LocalStoreSource(reg, repo);
  const image = await resolveImage(src, tag, `${repo}:${tag}`);
  mkdirSync(into);
  await buildTree(src, image, into);
  const tree = new Map<string, string>();
  const walk = (rel: string) => {
    for (const n of readdirSync(join(into, rel))) {
      const p = rel ? `${rel}/${n}` : n;
      const st = lstatSync(join(into, p));
      let what = `${(st.mode >>> 0).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isSymbolicLink()) what += ` -> ${readlinkSync(join(into, p))}`;
      else if (st.isFile()) what += ` ${createHash('sha256').update(readFileSync(join(into, p))).digest('hex').slice(0, 16)}`;
      tree.set(p, what);
      if (st.isDirectory()) walk(p);
    }
  };
  walk('');
  const manifest = JSON.parse(readFileSync(reg.blobPath(reg.resolveManifest(repo, tag)!.digest)!, 'utf8')) as { config: { digest: string } };
  const config = (JSON.parse(readFileSync(reg.blobPath(manifest.config.digest)!, 'utf8')) as { config: Record<string, unknown> }).config;
  return { config, tree };
}

test('native builder: the same image as buildah, file for file', { timeout: 900_000 }, async () => {
  const env = await deployEnv();
  const dir = mkdtempSync(join(tmpdir(), 'hangar-nb-'));
  const trees = mkdtempSync(join(tmpdir(), 'hangar-nb-trees-'));
  try {
    assert.equal((await env.t.api('POST', '/v1/apps', { app_name: 'nb', org_slug: 'personal' })).status, 201);
    writeContext(dir);
    let r = await env.cli(['deploy', '--build-only', '--push', '--image-label', 'native'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /with Hangar's builder/);
    process.env.HANGAR_BUILDER = 'buildah';
    try {
      r = await env.cli(['deploy', '--build-only', '--push', '--image-label', 'buildah'], dir);
    } finally {
      delete process.env.HANGAR_BUILDER;
    }
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /with buildah/);

    const native = await flatten(env, 'nb', 'native', join(trees, 'native'));
    const buildah = await flatten(env, 'nb', 'buildah', join(trees, 'buildah'));
    const { Labels: bl, ...bc } = buildah.config as { Labels?: Record<string, string> };
    delete bl?.['io.buildah.version'];
    // buildah drops HEALTHCHECK and SHELL from OCI-format images (Docker-format fields); Hangar keeps them, as BuildKit does.
    const { Healthcheck, Shell, ...nc } = native.config;
    assert.deepEqual(nc, { ...bc, Labels: bl });
    assert.deepEqual(Healthcheck, { Test: ['CMD', '/usr/local/bin/run', 'check'], Interval: 5_000_000_000 });
    assert.deepEqual(Shell, ['/bin/bash', '-c']);

    // buildah leaves the empty mount point of the /etc/hosts it binds in (BuildKit and Hangar do not).
    if (buildah.tree.get('etc/hosts')?.endsWith(' e3b0c44298fc1c14') && !native.tree.has('etc/hosts')) buildah.tree.delete('etc/hosts');
    const diff: string[] = [];
    for (const [p, v] of native.tree) if (buildah.tree.get(p) !== v) diff.push(`${p}: native ${v} / buildah ${buildah.tree.get(p) ?? 'missing'}`);
    for (const [p, v] of buildah.tree) if (!native.tree.has(p)) diff.push(`${p}: native missing / buildah ${v}`);
    assert.deepEqual(diff, [], `the images differ:\n${diff.slice(0, 40).join('\n')}`);
    // And what the Dockerfile asked for is there (not just equal).
    assert.equal(native.tree.get('etc/motd'), undefined, 'a file deleted by RUN is gone (whiteout)');
    assert.deepEqual([...native.tree.keys()].filter((k) => k.startsWith('var/log/apt/')), ['var/log/apt/new'], 'a directory recreated by RUN is opaque');
    assert.match(native.tree.get('srv/app/main.py')!, /^100644 4321:4321 /);
    assert.match(native.tree.get('srv/app/lib')!, /^40700 4321:4321/);
    assert.match(native.tree.get('usr/local/bin/run')!, /^100750 0:0 /);
    assert.match(native.tree.get('srv/app/link')!, / -> built.flag$/);
    assert.match(native.tree.get('srv/fifo')!, /^10644 /);
    assert.equal(readFileSync(join(trees, 'native', 'shell.txt'), 'utf8'), '/srv/app /root 0\n');
    assert.equal(readFileSync(join(trees, 'native', 'home', 'appuser', 'who.txt'), 'utf8'), '/home/appuser 4321:4321 4321 4400\n', 'USER gets its primary and supplementary groups');
    assert.ok(native.tree.has('srv/app/data'), 'WORKDIR created its directory');
    for (const n of ['a.txt', 'b.txt']) assert.ok(native.tree.has(`srv/app/notes/${n}`));
  } finally {
    rmSync(trees, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    await env.close();
  }
});

test('native builder: cache keys, digest stability, pruning', { timeout: 600_000 }, async () => {
  const env = await deployEnv();
  const dir = mkdtempSync(join(tmpdir(), 'hangar-nb-'));
  try {
    assert.equal((await env.t.api('POST', '/v1/apps', { app_name: 'nc', org_slug: 'personal' })).status, 201);
    writeFileSync(join(dir, 'hangar.toml'), 'app = "nc"\n');
    writeFileSync(join(dir, 'Dockerfile'), 'FROM debian:bookworm-slim\nRUN echo one > /one\nCOPY f.txt /f.txt\nRUN cat /f.txt > /copy\nCMD ["cat", "/copy"]\n');
    writeFileSync(join(dir, 'f.txt'), 'v1\n');
    const build = async (label: string) => {
      const r = await env.cli(['deploy', '--build-only', '--push', '--image-label', label], dir);
      assert.equal(r.code, 0, r.stderr);
      return { out: r.stderr, digest: env.t.daemon.registry.resolveManifest('nc', label)!.digest };
    };
    const a = await build('a');
    const b = await build('b');
    assert.equal((b.out.match(/Using cache/g) ?? []).length, 3, b.out);
    assert.equal(b.digest, a.digest, 'an unchanged rebuild is the same image');
    // A changed file misses from its COPY on; the RUN before it still hits.
    writeFileSync(join(dir, 'f.txt'), 'v2\n');
    const c = await build('c');
    assert.equal((c.out.match(/Using cache/g) ?? []).length, 1, c.out);
    assert.notEqual(c.digest, a.digest);
    assert.ok(env.layers('nc', 'c').some((l) => l.includes(Buffer.from('v2\n'))));
    // Touching a file without changing it still hits (content, not times, is the key).
    writeFileSync(join(dir, 'f.txt'), 'v2\n');
    assert.equal((await build('d')).digest, c.digest);

    // Over its budget, the cache drops the least recently used steps and their layer dirs.
    const native = join(env.t.dataDir, 'build', 'native');
    const layersBefore = readdirSync(join(native, 'layers')).length;
    assert.ok(layersBefore >= 4, `layers: ${layersBefore}`);
    process.env.HANGAR_BUILD_CACHE_BYTES = '1';
    try {
      writeFileSync(join(dir, 'f.txt'), 'v3\n');
      await build('e');
    } finally {
      delete process.env.HANGAR_BUILD_CACHE_BYTES;
    }
    assert.ok(readdirSync(join(native, 'layers')).length < layersBefore, 'layer dirs were pruned');
    // ...and builds go on working (what was dropped is rebuilt).
    await build('f');
    assert.ok(env.layers('nc', 'f').some((l) => l.includes(Buffer.from('v3\n'))));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await env.close();
  }
});

test('native builder: hostile Dockerfiles and contexts stay inside the build', { timeout: 600_000 }, async () => {
  const env = await deployEnv();
  const dir = mkdtempSync(join(tmpdir(), 'hangar-nb-'));
  // Files on the host a hostile build would like to read or write.
  const hostDir = mkdtempSync(join(tmpdir(), 'hangar-nb-host-'));
  const hostSecret = join(hostDir, 'secret');
  writeFileSync(hostSecret, 'HOST-ONLY-7d1e2\n');
  const resolvBefore = readFileSync('/etc/resolv.conf');
  try {
    assert.equal((await env.t.api('POST', '/v1/apps', { app_name: 'nh', org_slug: 'personal' })).status, 201);
    writeFileSync(join(dir, 'hangar.toml'), 'app = "nh"\n');
    writeFileSync(join(dir, 'ok.txt'), 'ok\n');
    const build = (dockerfile: string) => {
      writeFileSync(join(dir, 'Dockerfile'), dockerfile);
      return env.cli(['deploy', '--build-only', '--push'], dir);
    };

    // A context symlink to a host file: resolved inside the context, never followed out of it.
    symlinkSync(hostSecret, join(dir, 'evil'));
    let r = await build('FROM debian:bookworm-slim\nCOPY evil /evil\n');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /evil not found in the build context/);
    rmSync(join(dir, 'evil'));

    // A source above the context.
    r = await build('FROM debian:bookworm-slim\nCOPY ../../etc/passwd /p\n');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /outside the build context/);

    // Image symlinks pointing at host paths: COPY --from reads and COPY writes stay in the image.
    r = await build(
      `FROM debian:bookworm-slim AS s\nRUN ln -s ${hostSecret} /leak && ln -s ${hostDir} /out\n` +
        `FROM s\nCOPY ok.txt /out/written.txt\nCOPY --from=s /leak /leak-copy\n`,
    );
    assert.notEqual(r.code, 0, 'the dangling image symlink names nothing inside the image');
    assert.deepEqual(readdirSync(hostDir), ['secret'], 'nothing was written into the host directory');
    r = await build(`FROM debian:bookworm-slim\nRUN ln -s ${hostDir} /out\nCOPY ok.txt /out/written.txt\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(hostDir), ['secret'], 'the COPY landed in the image, not on the host');
    assert.ok(env.layers('nh', tagOf(r.stdout)).some((l) => l.includes(Buffer.from('ok\n'))));

    // RUN writes to the files Hangar binds in: the host's are untouched, and they are not in the image.
    // And the step is PID 1 of its own PID namespace.
    r = await build('FROM debian:bookworm-slim\nRUN echo pwned > /etc/resolv.conf; echo pwned > /etc/hosts; echo done > /done\nRUN tr "\\0" " " < /proc/1/cmdline > /pid1\n');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync('/etc/resolv.conf'), resolvBefore);
    assert.match(r.stderr, /Read-only file system/);
    const built = env.layers('nh', tagOf(r.stdout));
    const names = built.flatMap(tarNames);
    assert.ok(names.includes('done'), names.join(' '));
    assert.deepEqual(names.filter((n) => /^etc\/(resolv\.conf|hosts)$/.test(n)), [], 'nothing written to the bound files reached a layer');
    assert.ok(built.some((l) => l.includes(Buffer.from('/bin/sh -c tr '))), 'PID 1 in the step is the step itself');

    // Another organization's image cannot be a base, even by its full name.
    assert.equal((await env.t.api('POST', '/v1/orgs', { slug: 'other' })).status, 201);
    assert.equal((await env.t.api('POST', '/v1/apps', { app_name: 'theirs', org_slug: 'other' })).status, 201);
    await pushBusybox(env.t, 'theirs', 'v1');
    r = await build(`FROM ${env.registryHost}/theirs:v1\nRUN true\n`);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /belongs to an app of another organization/);
    r = await build(`FROM debian:bookworm-slim\nCOPY --from=${env.registryHost}/theirs:v1 /bin/busybox /bb\n`);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /belongs to an app of another organization/);

    // What the native builder does not do goes to buildah, said out loud.
    writeFileSync(join(dir, 'Dockerfile'), 'FROM debian:bookworm-slim\nRUN --mount=type=cache,target=/var/cache/x echo cached > /var/cache/x/f\n');
    r = await env.cli(['deploy', '--build-only', '--push'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Hangar's builder does not do .*cache.*building with buildah instead/);

    // Dockerfile syntax errors come back with the line, before anything runs.
    r = await build('FROM debian:bookworm-slim\nRUN true\nFROBNICATE now\n');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /line 3/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(hostDir, { recursive: true, force: true });
    await env.close();
  }
});
