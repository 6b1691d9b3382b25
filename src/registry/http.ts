import type { IncomingMessage, ServerResponse } from 'node:http';
import { open, readFile } from 'node:fs/promises';
import type { App } from '../accounts/index.js';
import { sendApiError } from '../api/errors.js';
import { regErr, sendRegistryError } from './errors.js';
import { isDigestRef, parseDigest, digestOf, type Digest } from './digest.js';
import { isValidTag, parseRepoName } from './names.js';
import { MAX_MANIFEST_BYTES, MT, parseManifest } from './manifests.js';
import { sendFileRange } from './send-file.js';
import type { Registry } from './registry.js';
import { access, actionFor, empty, methodNotAllowed, paginate, readBody, sendJson, tooLarge } from './http-util.js';
import { uploads } from './http-uploads.js';
import { adminApi, tokenEndpoint } from './http-admin.js';

const API_VERSION = { 'docker-distribution-api-version': 'registry/2.0' };

type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; ref: string }
  | { kind: 'uploads'; name: string; id: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'referrers'; name: string; digest: string };

/**
 * Routes on the raw request path (not a normalised URL): a `..` in a name
 * must reach the name check and fail there, not be resolved away.
 */
function route(path: string): Route | undefined {
  if (path === '/v2/' || path === '/v2') return { kind: 'base' };
  if (path === '/v2/_catalog') return { kind: 'catalog' };
  let m: RegExpExecArray | null;
  if ((m = /^\/v2\/(.+)\/tags\/list$/.exec(path))) return { kind: 'tags', name: m[1]! };
  if ((m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path))) return { kind: 'manifest', name: m[1]!, ref: m[2]! };
  if ((m = /^\/v2\/(.+)\/blobs\/uploads\/?([^/]*)$/.exec(path))) return { kind: 'uploads', name: m[1]!, id: m[2]! };
  if ((m = /^\/v2\/(.+)\/blobs\/([^/]+)$/.exec(path))) return { kind: 'blob', name: m[1]!, digest: m[2]! };
  if ((m = /^\/v2\/(.+)\/referrers\/([^/]+)$/.exec(path))) return { kind: 'referrers', name: m[1]! , digest: m[2]! };
  return undefined;
}

export async function handleRegistryRequest(reg: Registry, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const raw = req.url ?? '/';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  if (path.startsWith('/v1/registry/')) {
    try {
      await adminApi(reg, req, res, path);
    } catch (err) {
      sendApiError(res, err, reg.log);
    }
    return;
  }
  try {
    if (path === '/auth/token') return await tokenEndpoint(reg, req, res, query);
    for (const [k, v] of Object.entries(API_VERSION)) res.setHeader(k, v);
    const r = route(path);
    if (!r) throw regErr('UNSUPPORTED', `no such registry endpoint: ${req.method} ${path.slice(0, 200)}`, { status: 404 });
    const method = req.method ?? 'GET';
    switch (r.kind) {
      case 'base': {
        const caller = reg.auth.identify(req);
        if (!caller) throw reg.auth.unauthorized(req, 'authentication required: log in with an API token (docker login, or `hangar auth docker`)');
        return sendJson(res, 200, {});
      }
      case 'catalog':
        return await catalog(reg, req, res, query);
      case 'tags':
        return await tags(reg, req, res, r.name, query);
      case 'manifest':
        return await manifest(reg, req, res, method, r.name, r.ref);
      case 'uploads':
        return await uploads(reg, req, res, method, r.name, r.id, query);
      case 'blob':
        return await blob(reg, req, res, method, r.name, r.digest);
      case 'referrers':
        return await referrers(reg, req, res, r.name, r.digest, query);
    }
  } catch (err) {
    sendRegistryError(req, res, err, reg.log);
  }
}

/**
 * `X-Hangar-No-Upstream: 1`: answer from the store only, never from the
 * mirror's upstream (a pusher checking what is already there).
 */
function localOnly(req: IncomingMessage): boolean {
  return req.headers['x-hangar-no-upstream'] === '1';
}

// --- catalog and tags ---------------------------------------------------------------

async function catalog(reg: Registry, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw methodNotAllowed(req.method ?? '');
  const scope = 'registry:catalog:*';
  const caller = reg.auth.identify(req, scope);
  if (!caller) throw reg.auth.unauthorized(req, 'authentication required to list repositories', scope);
  if (caller.scoped && !caller.scoped.some((a) => a.type === 'registry' && a.name === 'catalog' && a.actions.length > 0)) {
    if (caller.anonymous) throw reg.auth.unauthorized(req, 'authentication required to list repositories', scope);
    throw reg.auth.unauthorized(req, 'the registry token does not cover the catalog; ask for registry:catalog:*', scope, 'insufficient_scope');
  }
  const withManifests = new Set(
    (reg.options.store.db.prepare('SELECT DISTINCT repo FROM registry_manifests').all() as Array<{ repo: string }>).map((r) => r.repo),
  );
  const visible = reg.meta
    .listRepos()
    .filter((r) => {
      if (!withManifests.has(r.name)) return false;
      const app = reg.accounts.findApp(parseRepoName(r.name).app);
      return app !== undefined && app.id === r.app_id && reg.accounts.mayAccessOrg(caller.principal, app.org_id);
    })
    .map((r) => r.name);
  const { page, link } = paginate(visible, query, '/v2/_catalog');
  sendJson(res, 200, { repositories: page }, link ? { link } : {});
}

async function tags(reg: Registry, req: IncomingMessage, res: ServerResponse, name: string, query: URLSearchParams): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw methodNotAllowed(req.method ?? '');
  access(reg, req, name, 'pull');
  const all = reg.meta.tags(name, undefined, 1_000_000);
  const { page, link } = paginate(all, query, `/v2/${name}/tags/list`);
  sendJson(res, 200, { name, tags: page }, link ? { link } : {});
}

// --- manifests ----------------------------------------------------------------------

async function manifest(reg: Registry, req: IncomingMessage, res: ServerResponse, method: string, name: string, ref: string): Promise<void> {
  if (!['GET', 'HEAD', 'PUT', 'DELETE'].includes(method)) throw methodNotAllowed(method);
  const { app } = access(reg, req, name, actionFor(method));
  const byDigest = isDigestRef(ref);
  const digest = byDigest ? parseDigest(ref) : undefined;
  if (!byDigest && !isValidTag(ref)) {
    throw regErr('MANIFEST_INVALID', `invalid tag ${JSON.stringify(ref.slice(0, 200))}: up to 128 of [A-Za-z0-9_.-], not starting with . or -`, {
      detail: { tag: ref.slice(0, 200) },
    });
  }

  if (method === 'PUT') return putManifest(reg, req, res, name, app, ref, digest);

  if (method === 'DELETE') {
    const ok = digest ? reg.meta.deleteManifest(name, digest.value) : reg.meta.deleteTag(name, ref);
    if (!ok) throw regErr('MANIFEST_UNKNOWN', `manifest ${ref} is not in ${name}`);
    return empty(res, 202, {});
  }

  if (reg.pullThrough && !localOnly(req)) await reg.pullThrough.ensureManifest(name, app, ref);
  const d = digest ? digest.value : reg.meta.tag(name, ref);
  const row = d ? reg.meta.manifest(name, d) : undefined;
  if (!row) throw regErr('MANIFEST_UNKNOWN', `manifest ${ref} is not in ${name}; list tags with GET /v2/${name}/tags/list`, { detail: { name, reference: ref } });
  const headers = {
    'content-type': row.media_type,
    'content-length': String(row.size),
    'docker-content-digest': row.digest,
    etag: `"${row.digest}"`,
  };
  if (method === 'HEAD') return empty(res, 200, headers);
  const path = reg.blobPath(row.digest);
  if (!path) throw new Error(`manifest ${row.digest} has a row but no blob`);
  const body = await readFile(path);
  res.writeHead(200, headers);
  res.end(body);
}

async function putManifest(
  reg: Registry,
  req: IncomingMessage,
  res: ServerResponse,
  name: string,
  app: App,
  ref: string,
  digest: Digest | undefined,
): Promise<void> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > MAX_MANIFEST_BYTES) throw tooLarge(MAX_MANIFEST_BYTES);
  const body = await readBody(req, MAX_MANIFEST_BYTES);
  const parsed = parseManifest(body, req.headers['content-type']);
  const actual = digestOf(body, digest?.algorithm ?? 'sha256');
  if (digest && actual !== digest.value) {
    throw regErr('DIGEST_INVALID', `the manifest's ${digest.algorithm} digest is ${actual}, not ${digest.value}: PUT it by its real digest`, {
      detail: { expected: digest.value, actual },
    });
  }
  const d = parseDigest(actual);
  await reg.storeManifest({
    repo: name,
    app,
    body,
    parsed,
    digest: d,
    tag: digest ? undefined : ref,
    check: () => reg.checkManifestRefs(name, parsed),
  });
  const headers: Record<string, string> = { location: `/v2/${name}/manifests/${d.value}`, 'docker-content-digest': d.value };
  if (parsed.subject) headers['oci-subject'] = parsed.subject;
  empty(res, 201, headers);
}

async function referrers(reg: Registry, req: IncomingMessage, res: ServerResponse, name: string, ref: string, query: URLSearchParams): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw methodNotAllowed(req.method ?? '');
  access(reg, req, name, 'pull');
  const subject = parseDigest(ref);
  const filter = query.get('artifactType');
  const rows = reg.meta.referrers(name, subject.value).filter((r) => filter === null || r.artifact_type === filter);
  const index = {
    schemaVersion: 2,
    mediaType: MT.ociIndex,
    manifests: rows.map((r) => ({
      mediaType: r.media_type,
      digest: r.digest,
      size: r.size,
      ...(r.artifact_type ? { artifactType: r.artifact_type } : {}),
      ...(r.annotations ? { annotations: JSON.parse(r.annotations) as Record<string, string> } : {}),
    })),
  };
  sendJson(res, 200, index, { 'content-type': MT.ociIndex, ...(filter !== null ? { 'oci-filters-applied': 'artifactType' } : {}) });
}

// --- blobs --------------------------------------------------------------------------

async function blob(reg: Registry, req: IncomingMessage, res: ServerResponse, method: string, name: string, ref: string): Promise<void> {
  if (!['GET', 'HEAD', 'DELETE'].includes(method)) throw methodNotAllowed(method);
  const { app } = access(reg, req, name, actionFor(method));
  const d = parseDigest(ref);
  if (method === 'DELETE') {
    if (!reg.meta.unlink(name, d.value)) throw regErr('BLOB_UNKNOWN', `blob ${d.value} is not in ${name}`);
    return empty(res, 202, {});
  }
  // A HEAD is how pushers ask "do you have it?" (the mirror seed included):
  // it pulls through only for blobs a stored manifest of this repo needs.
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    'docker-content-digest': d.value,
    etag: `"${d.value}"`,
    'accept-ranges': 'bytes',
    'cache-control': 'max-age=31536000',
  };
  if (reg.pullThrough && !localOnly(req) && (method === 'GET' || reg.meta.referencedIn(name, d.value))) {
    // A whole-blob GET that starts the upstream fetch gets the bytes as they arrive.
    const tee = method === 'GET' && !req.headers.range ? (size: number) => (res.writeHead(200, { ...headers, 'content-length': String(size) }), res) : undefined;
    if (await reg.pullThrough.ensureBlob(name, app, d, tee)) return;
  }
  const row = reg.meta.repoBlob(name, d.value);
  if (!row) throw regErr('BLOB_UNKNOWN', `blob ${d.value} is not in ${name}`, { detail: { digest: d.value } });
  if (method === 'HEAD') {
    reg.meta.touch(d.value);
    return empty(res, 200, { ...headers, 'content-length': String(row.size) });
  }
  let start = 0;
  let end = row.size - 1;
  let status = 200;
  const range = req.headers.range;
  if (range) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    let ok = !!m && (m[1] !== '' || m[2] !== '');
    if (ok && m) {
      if (m[1] === '') {
        start = Math.max(0, row.size - Number(m[2]));
      } else {
        start = Number(m[1]);
        if (m[2] !== '') end = Math.min(end, Number(m[2]));
      }
      ok = start <= end && start < row.size;
    }
    if (!ok) {
      res.writeHead(416, { 'content-range': `bytes */${row.size}`, 'content-length': '0' });
      res.end();
      return;
    }
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${row.size}`;
  }
  let fh;
  try {
    fh = await open(reg.content.blobPath(d), 'r');
  } catch (e) {
    reg.log.error('registry: blob row without a file', { digest: d.value, err: e });
    throw regErr('BLOB_UNKNOWN', `blob ${d.value} is missing from the store; push it again`);
  }
  res.writeHead(status, { ...headers, 'content-length': String(end - start + 1) });
  if (row.size === 0) {
    await fh.close();
    res.end();
    return;
  }
  await sendFileRange(fh, res, start, end);
}

