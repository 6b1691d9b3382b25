/**
 * A pull-only OCI Distribution client with Docker's auth flow: try the
 * request; on 401 read WWW-Authenticate; for Bearer, fetch a token from the
 * realm (anonymously, or with Basic credentials) for `repository:<repo>:pull`;
 * for Basic, send the credentials. Loopback registries are spoken to over
 * HTTP, everything else over HTTPS.
 */
import { Readable } from 'node:stream';
import { HangarError } from '../shared/errors.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from './manifest.js';
import type { FetchedManifest, ImageSource, SourceSpec } from './source.js';
import { parseChallenge } from '../shared/www-authenticate.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistrySourceOptions {
  credentials?: Credentials;
  /** An Authorization header already obtained (handed to a worker thread). */
  authHeader?: string;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** docker.io is an alias; its API lives at registry-1.docker.io. */
function apiHost(registry: string): string {
  return registry === 'docker.io' ? 'registry-1.docker.io' : registry;
}

/** Tokens per registry+scope, shared across sources (they are short-lived; refreshed on 401). */
const tokenCache = new Map<string, string>();

export class RegistrySource implements ImageSource {
  readonly name: string;
  private readonly base: string;
  private authHeader: string | undefined;

  constructor(
    private readonly registry: string,
    private readonly repo: string,
    private readonly options: RegistrySourceOptions = {},
  ) {
    const host = apiHost(registry);
    this.base = `${isLoopbackHost(host) ? 'http' : 'https'}://${host}/v2/${repo}`;
    this.name = `${registry}/${repo}`;
    this.authHeader = options.authHeader ?? tokenCache.get(this.cacheKey());
  }

  workerSpec(): SourceSpec {
    return { kind: 'registry', registry: this.registry, repo: this.repo, credentials: this.options.credentials, authHeader: this.authHeader };
  }

  async fetchManifest(reference: string, signal?: AbortSignal): Promise<FetchedManifest> {
    const res = await this.request(`/manifests/${reference}`, { Accept: MANIFEST_ACCEPT }, signal);
    const bytes = await readBounded(res, MAX_MANIFEST_BYTES, `${this.name}:${reference} manifest`);
    return { bytes, mediaType: res.headers.get('content-type') ?? undefined };
  }

  async openBlob(digest: string, _size: number, signal?: AbortSignal): Promise<Readable> {
    const res = await this.request(`/blobs/${digest}`, {}, signal);
    if (!res.body) throw new HangarError('REGISTRY_ERROR', `${this.name}: empty response for blob ${digest}`, { status: 502 });
    return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  }

  async fetchBlob(digest: string, maxBytes: number, signal?: AbortSignal): Promise<Buffer> {
    const res = await this.request(`/blobs/${digest}`, {}, signal);
    return readBounded(res, maxBytes, `${this.name} blob ${digest}`);
  }

  private cacheKey(): string {
    return `${this.registry}|${this.repo}|${this.options.credentials?.username ?? ''}`;
  }

  private async request(path: string, headers: Record<string, string>, signal?: AbortSignal, retried = false): Promise<Response> {
    const url = this.base + path;
    const h: Record<string, string> = { ...headers };
    if (this.authHeader) h.Authorization = this.authHeader;
    let res: Response;
    try {
      res = await fetchFollowing(url, h, signal);
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw e;
      throw new HangarError(
        'REGISTRY_UNREACHABLE',
        `cannot reach registry ${this.registry} (${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}); check the host name and that it is running`,
        { status: 502, cause: e },
      );
    }
    if (res.status === 401 && !retried) {
      await res.body?.cancel();
      this.authHeader = await this.authenticate(res.headers.get('www-authenticate') ?? '', signal);
      tokenCache.set(this.cacheKey(), this.authHeader);
      return this.request(path, headers, signal, true);
    }
    if (res.ok) return res;
    await res.body?.cancel();
    const what = `${this.name}${path.startsWith('/manifests/') ? `:${path.slice(11)}` : ` ${path.slice(1)}`}`;
    if (res.status === 404)
      throw new HangarError(path.startsWith('/manifests/') ? 'IMAGE_NOT_FOUND' : 'BLOB_NOT_FOUND', `${what} was not found on ${this.registry}; check the image name and tag`, {
        status: 404,
      });
    if (res.status === 401 || res.status === 403)
      throw new HangarError(
        'REGISTRY_AUTH',
        `${this.registry} refused access to ${this.repo} (HTTP ${res.status}); ${this.options.credentials ? 'check the registry credentials' : 'it needs credentials (log in to the registry first)'}`,
        { status: 401 },
      );
    throw new HangarError('REGISTRY_ERROR', `${this.registry} answered HTTP ${res.status} for ${what}; try again later`, { status: 502 });
  }

  private async authenticate(challenge: string, signal?: AbortSignal): Promise<string> {
    const { scheme, params } = parseChallenge(challenge);
    const creds = this.options.credentials;
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    if (scheme === 'basic') {
      if (!basic)
        throw new HangarError('REGISTRY_AUTH', `${this.registry} needs credentials to pull ${this.repo}; log in to the registry first`, {
          status: 401,
        });
      return basic;
    }
    if (scheme !== 'bearer' || !params.realm)
      throw new HangarError('REGISTRY_AUTH', `${this.registry} asked for unsupported authentication (${challenge || 'no challenge'})`, {
        status: 502,
      });
    const u = new URL(params.realm);
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackHost(u.host)))
      throw new HangarError('REGISTRY_AUTH', `${this.registry} sent a token realm over plain HTTP (${u.origin}); refusing to send credentials there`, {
        status: 502,
      });
    if (params.service) u.searchParams.set('service', params.service);
    u.searchParams.set('scope', params.scope ?? `repository:${this.repo}:pull`);
    let res: Response;
    try {
      res = await fetch(u, { headers: basic ? { Authorization: basic } : {}, signal });
    } catch (e) {
      throw new HangarError('REGISTRY_UNREACHABLE', `cannot reach the token service of ${this.registry} at ${u.origin}`, { status: 502, cause: e });
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new HangarError(
        'REGISTRY_AUTH',
        `${this.registry}'s token service refused ${creds ? `user ${creds.username}` : 'anonymous access'} to ${this.repo} (HTTP ${res.status}); ${creds ? 'check the credentials' : 'log in to the registry first'}`,
        { status: 401 },
      );
    }
    const body = JSON.parse((await readBounded(res, 1 << 20, 'token response')).toString('utf8')) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new HangarError('REGISTRY_AUTH', `${this.registry}'s token service returned no token`, { status: 502 });
    return `Bearer ${token}`;
  }
}

/** Follow redirects by hand so credentials never travel to another origin (blob stores, CDNs). */
async function fetchFollowing(url: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
  let current = new URL(url);
  const origin = current.origin;
  for (let i = 0; i < 5; i++) {
    const h = current.origin === origin ? headers : Object.fromEntries(Object.entries(headers).filter(([k]) => k !== 'Authorization'));
    const res = await fetch(current, { headers: h, redirect: 'manual', signal });
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      await res.body?.cancel();
      current = new URL(res.headers.get('location')!, current);
      continue;
    }
    return res;
  }
  throw new HangarError('REGISTRY_ERROR', `too many redirects fetching ${url}`, { status: 502 });
}

async function readBounded(res: Response, max: number, what: string): Promise<Buffer> {
  const len = Number(res.headers.get('content-length') ?? NaN);
  if (len > max) {
    await res.body?.cancel();
    throw new HangarError('BAD_IMAGE', `${what} is ${len} bytes, more than the ${max}-byte limit`, { status: 422 });
  }
  const chunks: Buffer[] = [];
  let n = 0;
  if (res.body) {
    for await (const c of res.body as AsyncIterable<Uint8Array>) {
      n += c.length;
      if (n > max) throw new HangarError('BAD_IMAGE', `${what} is more than the ${max}-byte limit`, { status: 422 });
      chunks.push(Buffer.from(c));
    }
  }
  return Buffer.concat(chunks);
}

export { parseChallenge };
