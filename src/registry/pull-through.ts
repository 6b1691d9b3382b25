/**
 * The Docker Hub mirror's pull-through: a pull from a `docker.io/<repo>`
 * repository that misses here is fetched from the upstream registry,
 * digest-checked and stored exactly as a push would store it, then served
 * from the store (so it survives restarts and outlives the upstream).
 *
 * - Tags fetched this way are re-resolved after `tagTtlMs` (a HEAD for the
 *   digest); an unreachable upstream leaves the cached copy in use. A tag
 *   pushed here (`hangar images seed`) is never replaced from upstream.
 * - Digests are immutable: a local hit is final.
 * - Index children and blobs are fetched when asked for; after a miss, the
 *   linux/amd64 image (what Hangar runs) and its blobs are prefetched in the
 *   background, so the rootfs cache, which reads the store directly, finds
 *   them. Concurrent misses of one object share one fetch.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { App } from '../accounts/index.js';
import type { Logger } from '../shared/log.js';
import { HangarError } from '../shared/errors.js';
import { regErr } from './errors.js';
import { digestOf, isDigestRef, parseDigest, type Digest } from './digest.js';
import { MAX_MANIFEST_BYTES, MT, parseManifest } from './manifests.js';
import { isMirrorRepo, MIRROR_PREFIX } from './auth.js';
import { readAll, UpstreamClient, UpstreamError } from './upstream.js';
import type { Registry } from './registry.js';

/** Called once the upstream announced a blob's size: returns where to copy its bytes as they arrive, or undefined. */
export type BlobTee = (size: number) => Writable | undefined;

export const DEFAULT_MIRROR_UPSTREAM = 'https://registry-1.docker.io';

export interface PullThroughOptions {
  /** Upstream registry base URL (default Docker Hub). */
  upstream?: string;
  /** Fetched tags are re-resolved against the upstream after this long (default 10 min). */
  tagTtlMs?: number;
  /** Larger blobs are refused (default 16 GiB). */
  maxBlobBytes?: number;
  /** An upstream silent this long (connecting, or mid-transfer) fails the fetch (default 30 s). */
  timeoutMs?: number;
  /** Prefetch the linux/amd64 image and its blobs after a miss (default true). */
  prefetch?: boolean;
}

const ACCEPT = [MT.ociIndex, MT.dockerList, MT.ociManifest, MT.dockerManifest].join(', ');

export class PullThrough {
  readonly upstream: UpstreamClient;
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly abort = new AbortController();
  private readonly tagTtlMs: number;
  private readonly maxBlobBytes: number;
  private readonly prefetchOn: boolean;

  constructor(
    private readonly reg: Registry,
    private readonly log: Logger,
    o: PullThroughOptions = {},
  ) {
    const url = (o.upstream ?? DEFAULT_MIRROR_UPSTREAM).replace(/\/+$/, '');
    this.upstream = new UpstreamClient({ url, explicit: url !== DEFAULT_MIRROR_UPSTREAM, timeoutMs: o.timeoutMs ?? 30_000 });
    this.tagTtlMs = o.tagTtlMs ?? 10 * 60_000;
    this.maxBlobBytes = o.maxBlobBytes ?? 16 * 1024 ** 3;
    this.prefetchOn = o.prefetch ?? true;
  }

  /** Stop in-flight fetches (daemon shutdown). */
  close(): void {
    this.abort.abort();
  }

  /** Whether misses in this repository go upstream: only the Docker Hub mirror's, never an app's. */
  covers(repo: string): boolean {
    return isMirrorRepo(repo) && repo.length > MIRROR_PREFIX.length;
  }

  /** Make sure manifest `ref` of mirror repo `repo` is in the store (fetching it if needed). */
  async ensureManifest(repo: string, app: App, ref: string): Promise<void> {
    if (!this.covers(repo)) return;
    if (isDigestRef(ref)) {
      const d = parseDigest(ref);
      if (this.reg.meta.manifest(repo, d.value)) return;
      await this.shared(`m ${repo}@${d.value}`, () => this.fetchManifest(repo, app, d.value, undefined).then(() => undefined));
      return;
    }
    const local = this.reg.meta.tag(repo, ref);
    const checkedAt = this.reg.meta.pulledAt(repo, ref);
    if (local && (checkedAt === undefined || Date.now() - checkedAt < this.tagTtlMs)) return;
    await this.shared(`t ${repo}:${ref}`, async () => {
      const cached = this.reg.meta.tag(repo, ref);
      if (!cached) {
        await this.fetchManifest(repo, app, ref, ref);
        return;
      }
      try {
        const res = await this.upstream.fetch(this.upstreamRepo(repo), `/manifests/${ref}`, { method: 'HEAD', accept: ACCEPT, signal: this.abort.signal });
        res.resume();
        const current = res.headers['docker-content-digest'];
        if (current === cached) this.reg.meta.markPulled(repo, ref, Date.now());
        else await this.fetchManifest(repo, app, ref, ref);
      } catch (e) {
        // The cached copy is what offline hosts run on: an upstream outage must not break pulls.
        this.reg.meta.markPulled(repo, ref, Date.now());
        this.log.warn('registry mirror: re-checking a tag upstream failed; serving the cached copy', {
          repo,
          tag: ref,
          upstream: this.upstream.origin,
          err: e instanceof Error ? e.message : String(e),
        });
      }
    });
  }

  /**
   * Make sure blob `digest` is in mirror repo `repo` (fetching it if needed).
   * With `tee`, the caller that starts the fetch also gets the bytes as they
   * arrive (so a client does not wait for a whole layer before its first
   * byte); returns true when the blob went to the tee, which is then ended
   * after the digest checked out, or destroyed if it did not.
   */
  async ensureBlob(repo: string, app: App, digest: Digest, tee?: BlobTee): Promise<boolean> {
    if (!this.covers(repo) || this.reg.meta.repoBlob(repo, digest.value)) return false;
    const key = `b ${repo}@${digest.value}`;
    const running = this.inflight.get(key);
    if (running) {
      await running;
      return false;
    }
    let teed = false;
    await this.shared(key, () =>
      this.fetchBlob(repo, app, digest, tee && ((size) => {
        teed = true;
        return tee(size);
      })),
    );
    return teed;
  }

  /** One fetch per key at a time; later callers wait for the first. */
  private shared(key: string, work: () => Promise<void>): Promise<void> {
    let p = this.inflight.get(key);
    if (!p) {
      p = work().finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  /** docker.io/debian is Docker Hub's library/debian, as docker itself spells it. */
  private upstreamRepo(repo: string): string {
    const rest = repo.slice(MIRROR_PREFIX.length);
    return rest.includes('/') ? rest : `library/${rest}`;
  }

  private async fetchManifest(repo: string, app: App, ref: string, tag: string | undefined): Promise<string> {
    const what = `${repo}:${ref}`.replace(':sha', '@sha');
    let body: Buffer;
    let contentType: string | undefined;
    let headerDigest: string | undefined;
    try {
      const res = await this.upstream.fetch(this.upstreamRepo(repo), `/manifests/${ref}`, { accept: ACCEPT, signal: this.abort.signal });
      contentType = res.headers['content-type'];
      headerDigest = res.headers['docker-content-digest'] as string | undefined;
      body = await readAll(res, MAX_MANIFEST_BYTES, `manifest ${what} from ${this.upstream.origin}`);
    } catch (e) {
      throw this.toRegistryError(e, 'manifest', what, repo, ref);
    }
    let parsed;
    try {
      parsed = parseManifest(body, contentType);
    } catch (e) {
      throw regErr('UNAVAILABLE', `${this.upstream.origin} sent a manifest for ${what} that this registry cannot store (${(e as Error).message})`, { status: 502 });
    }
    let d: Digest;
    if (isDigestRef(ref)) {
      d = parseDigest(ref);
      const actual = digestOf(body, d.algorithm);
      if (actual !== d.value) throw regErr('UNAVAILABLE', `${this.upstream.origin} sent a manifest for ${what} whose digest is ${actual}; not stored`, { status: 502 });
    } else {
      d = parseDigest(digestOf(body, 'sha256'));
      if (headerDigest?.startsWith('sha256:') && headerDigest !== d.value)
        throw regErr('UNAVAILABLE', `${this.upstream.origin} sent a manifest for ${what} whose digest ${d.value} is not the ${headerDigest} it announced; not stored`, { status: 502 });
    }
    await this.reg.storeManifest({ repo, app, body, parsed, digest: d, tag, pulled: tag !== undefined });
    this.log.info('registry mirror: pulled a manifest through', { repo, ref, digest: d.value, upstream: this.upstream.origin });
    if (this.prefetchOn) void this.prefetch(repo, app, body, parsed.kind);
    return d.value;
  }

  private async fetchBlob(repo: string, app: App, d: Digest, tee?: BlobTee): Promise<void> {
    const what = `blob ${d.value} of ${repo}`;
    const tmp = this.reg.content.tempPath();
    let client: Writable | undefined;
    let last: Buffer | undefined;
    try {
      let size = 0;
      const hash = createHash(d.algorithm);
      try {
        const res = await this.upstream.fetch(this.upstreamRepo(repo), `/blobs/${d.value}`, { signal: this.abort.signal });
        const declared = Number(res.headers['content-length'] ?? NaN);
        if (declared > this.maxBlobBytes) {
          res.destroy();
          throw new UpstreamError('too_large', `${what} is ${declared} bytes, more than the mirror's ${this.maxBlobBytes}-byte cap`);
        }
        const cap = this.maxBlobBytes;
        // Only a known length can be streamed on: the client's Content-Length is sent first.
        client = tee && Number.isSafeInteger(declared) ? tee(declared) : undefined;
        const out = client;
        // The newest chunk is held back until the digest checks out, so a
        // corrupt blob never reaches a client as a complete response.
        let held: Buffer | undefined;
        await pipeline(
          res,
          new Transform({
            transform(chunk: Buffer, _enc, cb) {
              size += chunk.length;
              if (size > cap) return cb(new UpstreamError('too_large', `${what} is more than the mirror's ${cap}-byte cap`));
              hash.update(chunk);
              // A slow client slows the fetch (backpressure); a gone client no longer does.
              const send = held;
              held = out ? chunk : undefined;
              if (out && send && !out.destroyed && !out.write(send)) {
                const go = () => {
                  out.off('drain', go);
                  out.off('close', go);
                  cb(null, chunk);
                };
                out.on('drain', go);
                out.on('close', go);
                return;
              }
              cb(null, chunk);
            },
          }),
          createWriteStream(tmp, { mode: 0o600 }),
        );
        last = held;
      } catch (e) {
        throw this.toRegistryError(e, 'blob', what, repo, d.value);
      }
      const actual = `${d.algorithm}:${hash.digest('hex')}`;
      if (actual !== d.value) throw regErr('UNAVAILABLE', `${this.upstream.origin} sent ${size} bytes for ${what} that hash to ${actual}; not stored`, { status: 502 });
      await this.reg.commitBlob(tmp, d, size, repo, app);
      if (client && !client.destroyed) client.end(last);
      client = undefined;
      this.log.info('registry mirror: pulled a blob through', { repo, digest: d.value, size, upstream: this.upstream.origin });
    } finally {
      // Bytes already went out: a failure can only cut the connection (the client's digest check catches the rest).
      client?.destroy();
      await this.reg.content.remove(tmp);
    }
  }

  /** Background: the linux/amd64 image of an index, and an image's blobs. Failures are only logged: a client asking later retries. */
  private async prefetch(repo: string, app: App, body: Buffer, kind: 'manifest' | 'index'): Promise<void> {
    try {
      const json = JSON.parse(body.toString('utf8')) as {
        config?: { digest: string };
        layers?: Array<{ digest: string; urls?: string[] }>;
        manifests?: Array<{ digest: string; platform?: { os?: string; architecture?: string } }>;
      };
      if (kind === 'index') {
        const child = json.manifests?.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64');
        if (child) await this.ensureManifest(repo, app, child.digest);
        return;
      }
      const digests = [json.config?.digest, ...(json.layers ?? []).filter((l) => !l.urls?.length).map((l) => l.digest)].filter((x): x is string => !!x);
      for (const digest of digests) {
        if (this.abort.signal.aborted) return;
        await this.ensureBlob(repo, app, parseDigest(digest));
      }
    } catch (e) {
      if (this.abort.signal.aborted) return;
      this.log.warn('registry mirror: prefetch failed (clients fetch on demand)', { repo, err: e instanceof Error ? e.message : String(e) });
    }
  }

  private toRegistryError(e: unknown, kind: 'manifest' | 'blob', what: string, repo: string, ref: string): Error {
    if (e instanceof HangarError) return e;
    if (e instanceof Error && e.name === 'AbortError') return regErr('UNAVAILABLE', `the registry is shutting down; fetching ${what} was cancelled`);
    if (!(e instanceof UpstreamError)) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      // A connection that broke mid-transfer is the upstream's failure; anything else (a full disk) is ours.
      if (!['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ERR_STREAM_PREMATURE_CLOSE'].includes(code) && (e as Error).message !== 'aborted') return e as Error;
      e = new UpstreamError('unreachable', `the connection to ${this.upstream.origin} broke (${code || 'aborted'})`);
    }
    const u = e as UpstreamError;
    const origin = this.upstream.origin;
    switch (u.kind) {
      case 'not_found':
        return kind === 'manifest'
          ? regErr('MANIFEST_UNKNOWN', `manifest ${ref} is not in ${repo}, and the mirror's upstream ${origin} does not have it either; check the image name and tag`, {
              detail: { name: repo, reference: ref, upstream: origin },
            })
          : regErr('BLOB_UNKNOWN', `${what} is not here, and the mirror's upstream ${origin} does not have it either`, { detail: { digest: ref, upstream: origin } });
      case 'rate_limited':
        return regErr('TOOMANYREQUESTS', `the mirror's upstream ${origin} rate-limited it while fetching ${what}; try again later, or seed base images with \`hangar images seed\``);
      case 'too_large':
        return regErr('SIZE_INVALID', `${u.message}; not mirrored`, { status: 502 });
      case 'unreachable':
        return regErr(
          'UNAVAILABLE',
          `${what} is not cached here and the mirror's upstream ${origin} is unreachable (${u.message}). ` +
            `On a host without internet access, seed base images with \`hangar images seed\` (admin), or point the daemon at a reachable registry with --mirror-upstream`,
          { status: 503, detail: { upstream: origin } },
        );
      case 'refused':
        return regErr('UNAVAILABLE', `not fetching ${what}: ${u.message}`, { status: 502, detail: { upstream: origin } });
      case 'status':
        return regErr('UNAVAILABLE', `the mirror's upstream failed fetching ${what}: ${u.message}`, { status: 502, detail: { upstream: origin } });
    }
  }
}
