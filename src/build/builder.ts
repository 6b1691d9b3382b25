import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Accounts, App } from '../accounts/index.js';
import type { Store } from '../store/index.js';
import type { Logger } from '../shared/log.js';
import type { DeployImageStore } from '../deploy/images.js';
import type { LocalImageWriter } from '../shared/image-store.js';
import { HangarError } from '../shared/errors.js';
import { lineSplitter } from '../shared/process.js';
import { deploymentTag, isValidLabel } from './tags.js';
import { ensureMirrorOwner, MIRROR_NAMESPACE, seedMirror, defaultCacheDir, BASE_IMAGES } from './mirror.js';
import { NativeBuilder, UnsupportedFeature } from './native/index.js';
import type { Dockerfile } from './native/dockerfile.js';

export interface BuilderOptions {
  dataDir: string;
  /** host:port of Hangar's registry as buildah reaches it (the daemon's address, known once it listens). */
  registryHost: () => string;
  store: Store;
  accounts: Accounts;
  /** Hangar's registry: read for base images, written in-process by the native builder. */
  images: DeployImageStore & LocalImageWriter;
  /** Every host:port this daemon's registry answers as (FROM may name any); defaults to registryHost. */
  registryHosts?: () => string[];
  log: Logger;
  /** buildah storage driver: overlay (default) or vfs. */
  storageDriver?: 'overlay' | 'vfs';
  cacheDir?: string;
  buildahPath?: string;
}

export interface BuildRequest {
  app: App;
  /** Dockerfile path inside the context. */
  dockerfile: string;
  target?: string;
  buildArgs?: Record<string, string>;
  /** id → value, for RUN --mount=type=secret,id=... Never stored, never logged. */
  secrets?: Record<string, string>;
  noCache?: boolean;
  /** Tag to use instead of deployment-<timestamp>. */
  label?: string;
}

export interface BuildResult {
  /** host:port/app:tag */
  image: string;
  repository: string;
  tag: string;
  digest: string;
  /** image@digest: what machines run. */
  ref: string;
  durationMs: number;
}

export type BuildOutput = (line: string) => void;

const ID = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * The daemon's builder. Dockerfiles go to Hangar's own builder
 * (src/build/native: in-process cache, overlay + chroot RUN steps, layers
 * pushed straight into the registry); what it does not implement goes to
 * buildah, with its own storage under the data dir, a layer cache kept
 * between builds, chroot isolation, and Hangar's registry as the Docker Hub
 * mirror for base images.
 */
export class Builder {
  readonly root: string;
  private readonly reserved = new Set<string>();
  private mirrorReady: Promise<void> | undefined;
  private readonly registriesConf: string;
  private readonly native: NativeBuilder;
  /** buildah builds running per app: earlier images are pruned only when none is. */
  private readonly buildahBuilds = new Map<string, number>();

  constructor(private readonly o: BuilderOptions) {
    this.root = join(o.dataDir, 'build');
    mkdirSync(join(this.root, 'tmp'), { recursive: true, mode: 0o700 });
    this.native = new NativeBuilder({ root: join(this.root, 'native'), images: o.images, accounts: o.accounts, registryHosts: o.registryHosts ?? (() => [o.registryHost()]) });
    this.registriesConf = join(this.root, 'registries.conf');
    ensureMirrorOwner(o.store, o.accounts);
  }

  private get host(): string {
    return this.o.registryHost();
  }

  /** docker.io → Hangar's mirror; the registry itself is plain HTTP on loopback. */
  private writeRegistriesConf(): void {
    writeFileSync(
      this.registriesConf,
      [
        "# Written by the Hangar daemon: Docker Hub comes from Hangar's registry mirror.",
        'unqualified-search-registries = ["docker.io"]',
        'short-name-mode = "permissive"',
        '[[registry]]',
        'prefix = "docker.io"',
        'location = "docker.io"',
        '[[registry.mirror]]',
        `location = "${this.host}/${MIRROR_NAMESPACE}"`,
        'insecure = true',
        '[[registry]]',
        `location = "${this.host}"`,
        'insecure = true',
        '',
      ].join('\n'),
    );
  }

  get storageDriver(): string {
    return this.o.storageDriver ?? ((process.env.HANGAR_BUILD_STORAGE_DRIVER as 'vfs' | 'overlay' | undefined) ?? 'overlay');
  }

  private storageArgs(): string[] {
    return ['--root', join(this.root, 'storage'), '--runroot', join(this.root, 'run'), '--storage-driver', this.storageDriver];
  }

  private env(authFile: string): NodeJS.ProcessEnv {
    return { ...process.env, CONTAINERS_REGISTRIES_CONF: this.registriesConf, REGISTRY_AUTH_FILE: authFile, BUILDAH_ISOLATION: 'chroot' };
  }

  /**
   * Seed the base-image mirror from the cached tarball (made by the setup
   * or `hangar images seed`) if the registry does not have it yet.
   */
  ensureMirror(out: BuildOutput = () => {}): Promise<void> {
    this.mirrorReady ??= (async () => {
      const cacheDir = this.o.cacheDir ?? defaultCacheDir();
      const missing = BASE_IMAGES.filter((b) => !this.o.images.resolveManifest(`${MIRROR_NAMESPACE}/${b.repository}`, b.tags[0]!));
      if (!missing.length) return;
      if (!missing.every((b) => existsSync(join(cacheDir, 'base', b.file)))) {
        out(`note: the base-image mirror is empty; run \`hangar images seed\` (admin) so FROM debian:bookworm-slim works offline`);
        return;
      }
      const { token, info } = this.o.accounts.createToken('mirror-seed', null, new Date(Date.now() + 15 * 60_000));
      try {
        await seedMirror({ registryUrl: `http://${this.host}`, token, cacheDir, progress: out });
      } finally {
        this.o.accounts.revokeToken({ tokenId: info.id, orgId: null }, info.id);
      }
    })().catch((err) => {
      this.mirrorReady = undefined;
      throw err;
    });
    return this.mirrorReady;
  }

  private allocateTag(app: string, label?: string): string {
    if (label !== undefined) {
      if (!isValidLabel(label)) throw new HangarError('BAD_REQUEST', `invalid image label "${label}": use letters, digits, _ . - (max 128), not starting with . or -`);
      return label;
    }
    const tag = deploymentTag(new Date(), (t) => this.reserved.has(`${app}:${t}`) || this.o.images.resolveManifest(app, t) !== undefined);
    this.reserved.add(`${app}:${tag}`);
    return tag;
  }

  async build(req: BuildRequest, context: Readable, out: BuildOutput, signal?: AbortSignal): Promise<BuildResult> {
    const started = Date.now();
    for (const id of Object.keys(req.secrets ?? {})) if (!ID.test(id)) throw new HangarError('BAD_REQUEST', `build secret name "${id}" must be letters, digits, _ . - (max 64)`);
    for (const k of Object.keys(req.buildArgs ?? {})) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new HangarError('BAD_REQUEST', `build arg name "${k}" is not a valid variable name`);
    const work = mkdtempSync(join(this.root, 'tmp', 'b-'));
    const timings: Array<[string, number]> = [];
    let mark = started;
    const lap = (name: string) => {
      const now = Date.now();
      timings.push([name, now - mark]);
      mark = now;
    };
    const ctxDir = join(work, 'context');
    const secretDir = join(work, 'secrets');
    mkdirSync(ctxDir, { mode: 0o700 });
    mkdirSync(secretDir, { mode: 0o700 });
    const app = req.app.name;
    const tag = this.allocateTag(app, req.label);
    const image = `${this.host}/${app}:${tag}`;
    const finish = (digest: string): BuildResult => {
      lap('push');
      const durationMs = Date.now() - started;
      out(`built in ${(durationMs / 1000).toFixed(2)} s (${timings.map(([n, ms]) => `${n} ${(ms / 1000).toFixed(2)}`).join(', ')})`);
      out(`image: ${image}@${digest}`);
      return { image, repository: app, tag, digest, ref: `${image}@${digest}`, durationMs };
    };
    const declined = (f: UnsupportedFeature) => out(`note: Hangar's builder does not do ${f.reason}${f.line ? ` (Dockerfile line ${f.line})` : ''}; building with buildah instead`);
    // buildah pushes over HTTP with a token of the app's org; the native builder writes in-process.
    let tokenId: string | undefined;
    /** A buildah build of this app is counted in buildahBuilds; `built`: the image it made. */
    let counted = false;
    let built: string | undefined;
    try {
      await extractContext(context, ctxDir);
      lap('context');
      const dockerfile = join(ctxDir, req.dockerfile);
      if (req.dockerfile.split('/').includes('..') || !existsSync(dockerfile)) {
        throw new HangarError('NO_DOCKERFILE', `the build context has no ${req.dockerfile}; pass --dockerfile PATH relative to the context`, { status: 400 });
      }
      const text = readFileSync(dockerfile, 'utf8');
      const parsed = this.nativeEnabled() ? this.native.parse(text) : undefined;
      if (parsed && !(parsed instanceof UnsupportedFeature)) {
        await this.ensureMirror(out);
        lap('prepare');
        try {
          return finish(await this.buildNative(req, { dockerfile: parsed, contextDir: ctxDir }, image, tag, out, lap, signal));
        } catch (e) {
          if (!(e instanceof UnsupportedFeature)) throw e;
          declined(e);
        }
      } else if (parsed) declined(parsed);
      this.writeRegistriesConf();
      this.buildahBuilds.set(app, (this.buildahBuilds.get(app) ?? 0) + 1);
      counted = true;
      await this.ensureMirror(out);
      lap('prepare');
      const { token, info } = this.o.accounts.createToken(`build-${app}`, req.app.org_id, new Date(Date.now() + 2 * 3600_000));
      tokenId = info.id;
      const authFile = join(work, 'auth.json');
      writeFileSync(authFile, JSON.stringify({ auths: { [this.host]: { auth: Buffer.from(`hangar:${token}`).toString('base64') } } }), { mode: 0o600 });
      const secretArgs: string[] = [];
      for (const [id, value] of Object.entries(req.secrets ?? {})) {
        const f = join(secretDir, id);
        writeFileSync(f, value, { mode: 0o600 });
        chmodSync(f, 0o600);
        secretArgs.push('--secret', `id=${id},src=${f}`);
      }
      const iidFile = join(work, 'iid');
      const args = [
        ...this.storageArgs(),
        'bud',
        '--isolation', 'chroot',
        '--layers',
        // Like `docker build`: a base image already in the builder's storage
        // is used as is, without asking the registry whether it changed (a
        // round trip per FROM). --no-cache also refreshes the bases.
        `--pull=${req.noCache ? 'true' : 'false'}`,
        '--format', 'oci',
        '--iidfile', iidFile,
        '-f', dockerfile,
        ...(req.noCache ? ['--no-cache'] : []),
        ...(req.target ? ['--target', req.target] : []),
        ...Object.entries(req.buildArgs ?? {}).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]),
        ...secretArgs,
        '-t', image,
        ctxDir,
      ];
      out(`building ${app} with buildah (storage ${this.storageDriver}, layer cache ${req.noCache ? 'off' : 'on'})`);
      const tail: string[] = [];
      let lastStep = '';
      const code = await this.buildah(args, this.env(authFile), (line) => {
        if (/^STEP \d+\/\d+: /.test(line) || /^\[\d+\/\d+\] STEP/.test(line)) lastStep = line;
        tail.push(line);
        if (tail.length > 30) tail.shift();
        out(redact(line, req.secrets));
      }, signal);
      if (code !== 0) {
        throw new HangarError(
          'BUILD_FAILED',
          `the build failed${lastStep ? ` at ${redact(lastStep, req.secrets)}` : ''} (buildah exit ${code}); nothing was deployed and running machines are unchanged. Last output:\n${redact(tail.slice(-12).join('\n'), req.secrets)}`,
          { status: 422 },
        );
      }
      const imageId = readFileSync(iidFile, 'utf8').trim();
      lap('buildah');
      out(`pushing ${image}`);
      const digestFile = join(work, 'digest');
      const pushTail: string[] = [];
      const pcode = await this.buildah(
        [...this.storageArgs(), 'push', '--tls-verify=false', '--authfile', authFile, '--digestfile', digestFile, imageId, `docker://${image}`],
        this.env(authFile),
        (l) => {
          pushTail.push(l);
          out(l);
        },
        signal,
      );
      if (pcode !== 0) throw new HangarError('PUSH_FAILED', `pushing ${image} to Hangar's registry failed: ${pushTail.slice(-5).join(' | ')}`, { status: 502 });
      built = image;
      return finish(readFileSync(digestFile, 'utf8').trim());
    } finally {
      this.reserved.delete(`${app}:${tag}`);
      // Clean-up is off the critical path: the build's answer does not wait for it.
      setImmediate(() => {
        this.afterBuild(work, tokenId, req.app.org_id);
        if (counted) void this.afterBuildah(app, built);
      });
    }
  }

  /** Remove a build's scratch (its secrets with it), revoke its token if it had one, prune the native cache. */
  private afterBuild(work: string, tokenId: string | undefined, orgId: string): void {
    rmSync(work, { recursive: true, force: true });
    try {
      if (tokenId) this.o.accounts.revokeToken({ tokenId, orgId }, tokenId);
    } catch (err) {
      this.o.log.warn('could not revoke build token', { err });
    }
    try {
      this.native.prune();
    } catch (err) {
      this.o.log.warn('could not prune the build cache', { err });
    }
  }

  /**
   * After a buildah build of `app`: when it succeeded and no other buildah
   * build of the app is running, drop the app's earlier images from
   * buildah's storage. The image just built stays (its layers are the next
   * build's cache); `rmi` also removes the untagged cache images under an
   * old image that nothing else uses, so the storage holds each app's latest
   * build instead of growing with every deploy. Dangling images are left
   * alone: those of a failed build are the cache for its retry.
   */
  private async afterBuildah(app: string, built: string | undefined): Promise<void> {
    const left = (this.buildahBuilds.get(app) ?? 1) - 1;
    if (left > 0) this.buildahBuilds.set(app, left);
    else this.buildahBuilds.delete(app);
    if (built === undefined || left > 0) return;
    try {
      const names: string[] = [];
      const code = await this.buildah([...this.storageArgs(), 'images', '--format', '{{.Name}}:{{.Tag}}'], process.env, (l) => names.push(l.trim()));
      if (code !== 0) return;
      // Images are `<registry host>/<app>:<tag>`; the host may have changed since (the daemon's port).
      const old = names.filter((ref) => {
        const slash = ref.indexOf('/');
        const colon = ref.lastIndexOf(':');
        return ref !== built && slash > 0 && colon > slash && ref.slice(slash + 1, colon) === app;
      });
      if (old.length === 0) return;
      const out: string[] = [];
      if ((await this.buildah([...this.storageArgs(), 'rmi', ...old], process.env, (l) => out.push(l))) !== 0) {
        this.o.log.warn("could not remove an app's earlier images from buildah's storage", { app, output: out.slice(-3).join(' | ') });
      }
    } catch (err) {
      this.o.log.warn("could not prune buildah's storage", { app, err });
    }
  }

  /** Hangar's own builder (src/build/native) unless HANGAR_BUILDER=buildah. */
  private nativeEnabled(): boolean {
    return (process.env.HANGAR_BUILDER ?? 'native') !== 'buildah';
  }

  /** Build with the native builder and push; returns the manifest digest. */
  private async buildNative(
    req: BuildRequest,
    input: { dockerfile: Dockerfile; contextDir: string },
    image: string,
    tag: string,
    out: BuildOutput,
    lap: (name: string) => void,
    signal?: AbortSignal,
  ): Promise<string> {
    const app = req.app.name;
    out(`building ${app} with Hangar's builder (layer cache ${req.noCache ? 'off' : 'on'})`);
    const say = (line: string) => out(redact(line, req.secrets));
    try {
      return await this.native.build(
        req.app,
        { ...input, ...(req.target ? { target: req.target } : {}), buildArgs: req.buildArgs ?? {}, secrets: req.secrets ?? {}, noCache: req.noCache ?? false },
        say,
        (state) => {
          lap('build');
          out(`pushing ${image}`);
          return this.native.publish(state, req.app, app, tag);
        },
        signal,
      );
    } catch (e) {
      if (e instanceof HangarError) throw new HangarError(e.code, redact(e.message, req.secrets), { status: e.status });
      throw e;
    }
  }

  private buildah(args: string[], env: NodeJS.ProcessEnv, onLine: (l: string) => void, signal?: AbortSignal): Promise<number> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.o.buildahPath ?? 'buildah', args, { env, stdio: ['ignore', 'pipe', 'pipe'], signal });
      child.stdout.on('data', lineSplitter(onLine));
      child.stderr.on('data', lineSplitter(onLine));
      child.on('error', (e: NodeJS.ErrnoException) => {
        if (e.name === 'AbortError') return resolve(130);
        reject(new HangarError('MISSING_TOOL', e.code === 'ENOENT' ? 'buildah is not installed on the Hangar host: run scripts/setup.sh' : `could not run buildah: ${e.message}`, { status: 500 }));
      });
      child.on('close', (c) => resolve(c ?? 1));
    });
  }
}

function redact(text: string, secrets?: Record<string, string>): string {
  let t = text;
  for (const v of Object.values(secrets ?? {})) if (v.length >= 4) t = t.split(v).join('[redacted]');
  return t;
}

/** GNU tar into an empty directory: no owners taken from the archive, no absolute or .. paths. */
function extractContext(context: Readable, dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('tar', ['-x', '--no-same-owner', '--no-overwrite-dir', '-C', dir, '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new HangarError('BAD_CONTEXT', `the build context is not a valid tar stream: ${err.trim().slice(0, 500)}`, { status: 400 }))));
    context.on('error', (e) => {
      child.kill();
      reject(e);
    });
    context.pipe(child.stdin);
    child.stdin.on('error', () => {});
  });
}
