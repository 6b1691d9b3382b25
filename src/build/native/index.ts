import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Accounts, App } from '../../accounts/index.js';
import { resolveDeployImage, type DeployImageStore } from '../../deploy/images.js';
import { HangarError, isHangarError } from '../../shared/errors.js';
import { buildTree, resolveImage } from '../../rootfs/convert.js';
import { LocalStoreSource } from '../../rootfs/source.js';
import type { AppRef, LocalImageWriter } from '../../shared/image-store.js';
import { OCI_MANIFEST, ociImage } from '../push.js';
import { BuildCache } from './cache.js';
import { NativeBuild, type BaseImage, type NativeBuildRequest, type StageState } from './build.js';
import { DockerfileError, parseDockerfile, UnsupportedFeature, type Dockerfile } from './dockerfile.js';
import { ociLayerType, type ImageConfigJson, type LayerDescriptor } from './image.js';
import { writeLayerBlob } from './layer-tar.js';
import { Sandbox } from './sandbox.js';

export { UnsupportedFeature } from './dockerfile.js';
export type { StageState } from './build.js';

export interface NativeBuilderOptions {
  root: string;
  /** Hangar's registry: base images are read from it, builds written into it in-process. */
  images: DeployImageStore & LocalImageWriter;
  accounts: Accounts;
  registryHosts: () => string[];
  /** Bytes the layer cache may keep (least recently used steps go first). */
  maxCacheBytes?: number;
}

/** The daemon's native builder (see build.ts); one per daemon. */
export class NativeBuilder {
  readonly cache: BuildCache;
  private readonly sandbox: Sandbox;
  private recovered: Promise<void> | undefined;

  constructor(private readonly o: NativeBuilderOptions) {
    this.cache = new BuildCache(o.root);
    this.sandbox = new Sandbox(o.root);
  }

  /** The parsed Dockerfile, or why the native builder passes it to buildah. Syntax errors are the user's to fix. */
  parse(text: string): Dockerfile | UnsupportedFeature {
    try {
      return parseDockerfile(text);
    } catch (e) {
      if (e instanceof UnsupportedFeature) return e;
      if (e instanceof DockerfileError) throw new HangarError('BAD_DOCKERFILE', e.message, { status: 400 });
      throw e;
    }
  }

  /** Build, then `publish` the result; the cache keeps what it uses until `publish` returns. */
  async build<T>(app: App, req: NativeBuildRequest, out: (line: string) => void, publish: (state: StageState) => Promise<T>, signal?: AbortSignal): Promise<T> {
    await (this.recovered ??= this.cache.recover());
    const build = new NativeBuild(req, { cache: this.cache, sandbox: this.sandbox, resolveBase: (ref, sig) => this.resolveBase(app, ref, sig), out, ...(signal ? { signal } : {}) });
    const state = await build.run();
    try {
      return await publish(state);
    } finally {
      build.release();
      // After the caller has answered: unmounting spawns processes, which blocks the event loop a little.
      setImmediate(() => void build.cleanup());
    }
  }

  /** Keep the cache within its budget; called after each build. */
  prune(): void {
    this.cache.prune(this.o.maxCacheBytes ?? Number(process.env.HANGAR_BUILD_CACHE_BYTES ?? 20 * 1024 ** 3));
  }

  /**
   * A FROM / COPY --from image: an image of this org's apps or the Docker
   * Hub mirror (the same rule as `deploy --image`), flattened once.
   */
  private async resolveBase(app: App, ref: string, signal?: AbortSignal): Promise<BaseImage> {
    let resolved;
    try {
      resolved = await resolveDeployImage({ ref, app, accounts: this.o.accounts, images: this.o.images, registryHosts: this.o.registryHosts() });
    } catch (e) {
      if (isHangarError(e) && e.code === 'IMAGE_NOT_FOUND') {
        throw new HangarError('BUILD_FAILED', `base image ${ref} is not in Hangar's registry or its Docker Hub mirror: push it, or (admin) run \`hangar images seed\` for the Debian bases`, { status: 422 });
      }
      throw e;
    }
    if (!resolved.repository || !resolved.digest) throw new UnsupportedFeature(`the base image ${ref} is in another registry`, 0);
    const source = new LocalStoreSource(this.o.images, resolved.repository);
    const image = await resolveImage(source, resolved.digest, resolved.image, signal);
    const configPath = this.o.images.blobPath(image.configDigest);
    if (!configPath) throw new HangarError('BUILD_FAILED', `base image ${ref}: its config is missing from the registry; push the image again`, { status: 422 });
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as ImageConfigJson;
    const dir = this.cache.baseDir(image.digest);
    if (!existsSync(this.cache.abs(dir))) {
      const tmp = this.cache.tmp('base-');
      try {
        await buildTree(source, image, tmp, { signal });
        try {
          renameSync(tmp, this.cache.abs(dir));
        } catch (e) {
          // Another build flattened it first.
          if (!existsSync(this.cache.abs(dir))) throw e;
        }
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    }
    const layers: LayerDescriptor[] = image.layers.map((l) => ({ mediaType: ociLayerType(l.mediaType), digest: l.digest, size: l.size }));
    return { repo: resolved.repository, digest: image.digest, config, layers, dir };
  }

  /**
   * Write a built state into the registry as `repo:tag`, in-process: base
   * layers are linked from the store, built layers written as blobs (once:
   * the blob is kept with the cache entry, and rebuilt identically if the
   * registry dropped it), concurrently; then the config and the manifest.
   */
  async publish(state: StageState, app: AppRef, repo: string, tag: string): Promise<string> {
    const writer = this.o.images;
    const pushed = await Promise.all(
      state.layers.map(async (l): Promise<[LayerDescriptor, string]> => {
        if (l.kind === 'base') {
          if (!(await writer.linkBlob(repo, app, l.desc.digest))) {
            throw new HangarError('PUSH_FAILED', `layer ${l.desc.digest} of the base image is missing from the registry; push the base image again`, { status: 502 });
          }
          return [l.desc, l.diffId];
        }
        const rec = l.record;
        let blob = rec.blob;
        if (!blob || !(await writer.linkBlob(repo, app, blob.digest))) {
          const file = writer.blobTempPath();
          try {
            blob = await writeLayerBlob(this.cache.abs(this.cache.layerDir(rec.layer!)), file, { xattrs: rec.xattrs !== false });
            await writer.addBlob(repo, app, file, blob.digest, blob.size);
          } finally {
            rmSync(file, { force: true });
          }
          this.cache.put(l.key, { ...rec, blob });
        }
        return [{ mediaType: blob.mediaType, digest: blob.digest, size: blob.size }, blob.diffId];
      }),
    );
    const config: ImageConfigJson = {
      created: state.created,
      architecture: 'amd64',
      os: 'linux',
      config: state.config,
      rootfs: { type: 'layers', diff_ids: pushed.map(([, diffId]) => diffId) },
      history: state.history,
    };
    const { configBytes, configDigest, manifest } = ociImage(config, pushed.map(([desc]) => desc));
    const file = writer.blobTempPath();
    try {
      writeFileSync(file, configBytes, { mode: 0o600 });
      await writer.addBlob(repo, app, file, configDigest, configBytes.length);
    } finally {
      rmSync(file, { force: true });
    }
    return writer.putManifest(repo, app, tag, manifest, OCI_MANIFEST);
  }
}
