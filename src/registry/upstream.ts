/**
 * The pull-through mirror's client for its upstream registry (Docker Hub by
 * default): plain node:http(s) so every connection goes through a lookup
 * that refuses private, loopback and link-local addresses (SSRF). Only the
 * host the admin configured explicitly may be such an address. Docker's
 * auth flow: on 401 with a Bearer challenge, an anonymous token from the
 * realm for `repository:<repo>:pull`, then the request once more.
 */
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import { HangarError } from '../shared/errors.js';
import { parseChallenge } from '../shared/www-authenticate.js';

export type UpstreamFailure = 'unreachable' | 'not_found' | 'status' | 'refused' | 'too_large' | 'rate_limited';

export class UpstreamError extends Error {
  constructor(
    readonly kind: UpstreamFailure,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface UpstreamClientOptions {
  /** Base URL, e.g. https://registry-1.docker.io. */
  url: string;
  /** The admin configured this URL: its own host may be a loopback/private address. */
  explicit: boolean;
  /** No byte for this long (connect, headers or body) aborts the request. */
  timeoutMs: number;
}

/** True for addresses a request from the daemon must not reach unless the admin named them. */
export function isPrivateAddress(ip: string): boolean {
  let a = ip.toLowerCase();
  if (a.startsWith('[')) a = a.slice(1, -1);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) a = mapped[1]!;
  if (isIP(a) === 4) {
    const [p, q] = a.split('.').map(Number) as [number, number];
    return (
      p === 0 || p === 10 || p === 127 || p >= 224 ||
      (p === 100 && q >= 64 && q < 128) ||
      (p === 169 && q === 254) ||
      (p === 172 && q >= 16 && q < 32) ||
      (p === 192 && q === 168) ||
      (p === 192 && q === 0 && a.startsWith('192.0.0.')) ||
      (p === 198 && (q === 18 || q === 19))
    );
  }
  if (isIP(a) === 6) {
    return a === '::' || a === '::1' || /^f[cd]/.test(a) || /^fe[89ab]/.test(a) || a.startsWith('ff') || a.startsWith('64:ff9b:');
  }
  return true;
}

const MAX_REDIRECTS = 5;

export class UpstreamClient {
  readonly base: URL;
  readonly origin: string;
  private readonly trustedHost: string | undefined;
  private readonly tokens = new Map<string, string>();

  constructor(private readonly o: UpstreamClientOptions) {
    let u: URL;
    try {
      u = new URL(o.url);
    } catch {
      throw new HangarError('BAD_CONFIG', `mirror upstream ${JSON.stringify(o.url)} is not a URL: use e.g. https://registry-1.docker.io, or off`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new HangarError('BAD_CONFIG', `mirror upstream ${o.url} must be an http(s) URL`);
    if (u.username || u.password || u.search || u.hash) throw new HangarError('BAD_CONFIG', `mirror upstream ${o.url} must not carry credentials, a query or a fragment`);
    this.base = u;
    this.origin = u.origin;
    this.trustedHost = o.explicit ? u.hostname.replace(/^\[|\]$/g, '') : undefined;
  }

  /** GET or HEAD `/v2/<repo><path>` (a 2xx response, body unread), following redirects by hand. */
  async fetch(repo: string, path: string, opts: { method?: 'GET' | 'HEAD'; accept?: string; signal?: AbortSignal } = {}): Promise<IncomingMessage> {
    const prefix = this.base.pathname.replace(/\/$/, '');
    const url = new URL(`${prefix}/v2/${repo}${path}`, this.base);
    const headers: OutgoingHttpHeaders = { 'user-agent': 'hangar-registry-mirror' };
    if (opts.accept) headers.accept = opts.accept;
    for (let attempt = 0; ; attempt++) {
      const auth = this.tokens.get(repo);
      const res = await this.follow(url, opts.method ?? 'GET', { ...headers, ...(auth ? { authorization: auth } : {}) }, opts.signal);
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) return res;
      const challenge = res.headers['www-authenticate'];
      res.resume();
      if (status === 401 && attempt === 0) {
        this.tokens.set(repo, await this.token(repo, String(challenge ?? ''), opts.signal));
        continue;
      }
      if (status === 404) throw new UpstreamError('not_found', `${this.origin} has no ${repo}${path.replace(/^\/manifests\//, ':').replace(/^\/blobs\//, ' blob ')}`, 404);
      if (status === 429) throw new UpstreamError('rate_limited', `${this.origin} rate-limited the mirror (HTTP 429); try again later`, 429);
      if (status === 401 || status === 403)
        throw new UpstreamError('status', `${this.origin} refused anonymous access to ${repo} (HTTP ${status}): the repository may be private or not exist`, status);
      throw new UpstreamError('status', `${this.origin} answered HTTP ${status} for ${repo}${path}`, status);
    }
  }

  private async token(repo: string, challenge: string, signal?: AbortSignal): Promise<string> {
    const { scheme, params } = parseChallenge(challenge);
    if (scheme !== 'bearer' || !params.realm)
      throw new UpstreamError('status', `${this.origin} asked for authentication the mirror does not do (${challenge.slice(0, 100) || 'no challenge'}); it pulls anonymously`, 401);
    let realm: URL;
    try {
      realm = new URL(params.realm);
    } catch {
      throw new UpstreamError('status', `${this.origin} sent an invalid token realm`, 401);
    }
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', `repository:${repo}:pull`);
    const res = await this.follow(realm, 'GET', { 'user-agent': 'hangar-registry-mirror' }, signal);
    if (res.statusCode !== 200) {
      res.resume();
      throw new UpstreamError('status', `${realm.origin}'s token service refused anonymous pull of ${repo} (HTTP ${res.statusCode})`, res.statusCode);
    }
    const body = await readAll(res, 1 << 20, 'token response');
    let token: string | undefined;
    try {
      const j = JSON.parse(body.toString('utf8')) as { token?: string; access_token?: string };
      token = j.token ?? j.access_token;
    } catch {
      token = undefined;
    }
    if (!token) throw new UpstreamError('status', `${realm.origin}'s token service returned no token`, 502);
    return `Bearer ${token}`;
  }

  /** Redirects are followed by hand: every hop passes the address check, credentials stay on their origin. */
  private async follow(start: URL, method: string, headers: OutgoingHttpHeaders, signal?: AbortSignal): Promise<IncomingMessage> {
    let url = start;
    for (let i = 0; i <= MAX_REDIRECTS; i++) {
      const h = url.origin === start.origin ? headers : Object.fromEntries(Object.entries(headers).filter(([k]) => k !== 'authorization'));
      const res = await this.once(url, method, h, signal);
      const loc = res.headers.location;
      if (res.statusCode && res.statusCode >= 300 && res.statusCode < 400 && loc) {
        res.resume();
        url = new URL(loc, url);
        continue;
      }
      return res;
    }
    throw new UpstreamError('status', `${this.origin} redirected more than ${MAX_REDIRECTS} times`, 502);
  }

  private checkDestination(url: URL): void {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const trusted = host === this.trustedHost;
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && (trusted || url.origin === this.origin)))
      throw new UpstreamError('refused', `refusing plain-HTTP request to ${url.origin} (only the configured upstream may be plain HTTP)`);
    if (isIP(host) && isPrivateAddress(host) && !trusted)
      throw new UpstreamError('refused', `refusing to contact ${url.origin}: a private, loopback or link-local address; name it with --mirror-upstream to allow it`);
  }

  private once(url: URL, method: string, headers: OutgoingHttpHeaders, signal?: AbortSignal): Promise<IncomingMessage> {
    this.checkDestination(url);
    const trusted = url.hostname.replace(/^\[|\]$/g, '') === this.trustedHost;
    return new Promise((resolve, reject) => {
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
        method,
        headers,
        signal,
        lookup: trusted ? undefined : guardedLookup,
      });
      let response: IncomingMessage | undefined;
      // The idle timeout keeps guarding the body: a stalled transfer errors the response stream.
      req.setTimeout(this.o.timeoutMs, () => {
        const secs = `${Math.round(this.o.timeoutMs / 100) / 10} s`;
        if (response) response.destroy(new UpstreamError('unreachable', `${url.origin} went silent for ${secs} mid-transfer`));
        else req.destroy(new UpstreamError('unreachable', `${url.origin} did not answer within ${secs}`));
      });
      req.on('response', (res) => {
        response = res;
        resolve(res);
      });
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e instanceof UpstreamError || e.name === 'AbortError') return reject(e);
        reject(new UpstreamError('unreachable', `cannot reach ${url.origin}: ${e.code ?? e.message}`));
      });
      req.end();
    });
  }
}

/** dns.lookup that fails for names resolving to private addresses (checked at connect time: no rebinding window). */
function guardedLookup(
  hostname: string,
  options: LookupOptions,
  cb: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addrs) => {
    if (err) return cb(err, '');
    const list = addrs as LookupAddress[];
    const bad = list.find((a) => isPrivateAddress(a.address));
    if (bad || list.length === 0) {
      const e = new UpstreamError('refused', `refusing to contact ${hostname}: it resolves to ${bad?.address ?? 'nothing'}, a private, loopback or link-local address`);
      return cb(e as NodeJS.ErrnoException, '');
    }
    if (options.all) cb(null, list);
    else cb(null, list[0]!.address, list[0]!.family);
  });
}

export async function readAll(res: IncomingMessage, max: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers['content-length'] ?? NaN);
  if (declared > max) {
    res.destroy();
    throw new UpstreamError('too_large', `${what} is ${declared} bytes, more than the ${max}-byte limit`);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    n += (c as Buffer).length;
    if (n > max) {
      res.destroy();
      throw new UpstreamError('too_large', `${what} is more than the ${max}-byte limit`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}
