import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
export const sha512 = (b: Buffer | string) => `sha512:${createHash('sha512').update(b).digest('hex')}`;

export interface RegistryFixture extends TestDaemon {
  url: string;
  /** host:port as clients name the registry. */
  host: string;
  /** A token of org `acme`, which owns apps `demo` and `other`. */
  token: string;
  /** A token of org `rival`, which owns app `rivalapp`. */
  rivalToken: string;
  basic(token?: string): string;
  /** Raw HTTP request (the path is sent as-is, `..` included). */
  http(method: string, path: string, opts?: { headers?: Record<string, string>; body?: Buffer | string; token?: string | null }): Promise<HttpResult>;
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json(): any;
}

export async function startRegistry(): Promise<RegistryFixture> {
  const t = await startTestDaemon();
  const acme = t.daemon.accounts.createOrg('acme');
  t.daemon.accounts.createApp('demo', acme.id);
  t.daemon.accounts.createApp('other', acme.id);
  const rival = t.daemon.accounts.createOrg('rival');
  t.daemon.accounts.createApp('rivalapp', rival.id);
  const token = t.daemon.accounts.createToken('ci', acme.id).token;
  const rivalToken = t.daemon.accounts.createToken('ci', rival.id).token;
  const url = t.daemon.url;
  const host = url.replace(/^http:\/\//, '');
  const basic = (tok = token) => 'Basic ' + Buffer.from(`hangar:${tok}`).toString('base64');
  return {
    ...t,
    url,
    host,
    token,
    rivalToken,
    basic,
    http(method, path, opts = {}) {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      if (opts.token !== null && !('authorization' in headers)) headers.authorization = basic(opts.token ?? token);
      return rawHttp(url, method, path, headers, opts.body);
    },
  };
}

export function rawHttp(base: string, method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<HttpResult> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const b = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b, json: () => JSON.parse(b.toString('utf8')) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** Push a blob monolithically (POST + PUT) and return its digest. */
export async function pushBlob(r: RegistryFixture, repo: string, data: Buffer, token?: string): Promise<string> {
  const d = sha256(data);
  const post = await r.http('POST', `/v2/${repo}/blobs/uploads/`, { token });
  if (post.status !== 202) throw new Error(`POST upload: ${post.status} ${post.body}`);
  const loc = String(post.headers.location);
  const put = await r.http('PUT', `${loc}?digest=${d}`, { body: data, token, headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`PUT upload: ${put.status} ${put.body}`);
  return d;
}

export interface PushedImage {
  manifest: Buffer;
  digest: string;
  config: string;
  layers: string[];
}

/** Push config + layers + an OCI manifest under `tag`. */
export async function pushImage(r: RegistryFixture, repo: string, tag: string, layers: Buffer[] = [Buffer.from(`layer ${tag} ${Math.random()}`)], extra: Record<string, unknown> = {}): Promise<PushedImage> {
  const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const config = await pushBlob(r, repo, cfg);
  const ls: string[] = [];
  for (const l of layers) ls.push(await pushBlob(r, repo, l));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: cfg.length },
      layers: layers.map((l, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: ls[i], size: l.length })),
      ...extra,
    }),
  );
  const put = await r.http('PUT', `/v2/${repo}/manifests/${tag}`, {
    body: manifest,
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
  });
  if (put.status !== 201) throw new Error(`PUT manifest: ${put.status} ${put.body}`);
  return { manifest, digest: sha256(manifest), config, layers: ls };
}

/** Every file in the content store's blobs/ (what is "stored"). */
export function storedBlobFiles(dataDir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(join(dataDir, 'registry', 'blobs'));
  return out.sort();
}

export function uploadFiles(dataDir: string): string[] {
  const d = join(dataDir, 'registry', 'uploads');
  return existsSync(d) ? readdirSync(d) : [];
}

export function ociError(res: HttpResult): { code: string; message: string } {
  const body = res.json() as { errors: Array<{ code: string; message: string }> };
  if (!Array.isArray(body.errors) || body.errors.length === 0) throw new Error(`not an OCI error body: ${res.body}`);
  return body.errors[0]!;
}
