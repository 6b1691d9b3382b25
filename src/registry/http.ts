import type { IncomingMessage, ServerResponse } from 'node:http';
import { open, readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import type { Principal } from '../accounts/index.js';
import { HangarError } from '../shared/errors.js';
import { sendApiError } from '../api/errors.js';
import { regErr, sendRegistryError } from './errors.js';
import { isDigestRef, parseDigest, digestOf, type Digest } from './digest.js';
import { isValidTag, parseRepoName } from './names.js';
import { MAX_MANIFEST_BYTES, MT, parseManifest } from './manifests.js';
import { uploadLocation, type Session } from './uploads.js';
import { sendFileRange } from './send-file.js';
import type { Caller } from './auth.js';
import type { Registry } from './registry.js';

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

// --- helpers --------------------------------------------------------------------

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(res.req?.method === 'HEAD' ? undefined : text);
}

function empty(res: ServerResponse, status: number, headers: Record<string, string>): void {
  res.writeHead(status, { 'content-length': '0', ...headers });
  res.end();
}

function methodNotAllowed(method: string): HangarError {
  return regErr('UNSUPPORTED', `${method} is not supported on this endpoint`, { status: 405 });
}

function access(reg: Registry, req: IncomingMessage, name: string, action: 'pull' | 'push' | 'delete') {
  const caller = reg.auth.identify(req, `repository:${name}:${action === 'push' ? 'pull,push' : action}`);
  const app = reg.auth.authorize(req, caller, name, action);
  reg.syncRepo(name, app);
  return { caller: caller!, app };
}

function actionFor(method: string): 'pull' | 'push' | 'delete' {
  if (method === 'GET' || method === 'HEAD') return 'pull';
  if (method === 'DELETE') return 'delete';
  return 'push';
}

function hasBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

function tooLarge(limit: number) {
  return regErr('MANIFEST_INVALID', `manifest is larger than ${limit} bytes: split it (an index of smaller manifests) or move data into blobs`, {
    status: 413,
    detail: { limit },
  });
}

function paginate(items: string[], query: URLSearchParams, base: string): { page: string[]; link?: string } {
  const nRaw = query.get('n');
  const last = query.get('last') ?? undefined;
  let list = last !== undefined ? items.filter((t) => t > last) : items;
  if (nRaw === null) return { page: list };
  const n = Number(nRaw);
  if (!Number.isInteger(n) || n < 0) throw regErr('UNSUPPORTED', `n must be a non-negative integer, got ${JSON.stringify(nRaw)}`, { status: 400 });
  const page = list.slice(0, n);
  if (list.length > n && page.length > 0) {
    return { page, link: `<${base}?n=${n}&last=${encodeURIComponent(page[page.length - 1]!)}>; rel="next"` };
  }
  return { page };
}

function parseContentRange(h: string | undefined): { start: number; end: number } | undefined {
  if (!h) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/\d+|\/\*)?$/.exec(h.trim());
  if (!m) throw regErr('BLOB_UPLOAD_INVALID', `Content-Range ${JSON.stringify(h)} is not <start>-<end>`, { status: 416 });
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw regErr('BLOB_UPLOAD_INVALID', `Content-Range ${h} ends before it starts`, { status: 416 });
  return { start, end };
}

function uploadHeaders(s: Session): Record<string, string> {
  return { location: uploadLocation(s), range: `0-${Math.max(0, s.size - 1)}`, 'docker-upload-uuid': s.id };
}

// --- token endpoint ---------------------------------------------------------------

async function tokenEndpoint(reg: Registry, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  let params = query;
  let secret: string | undefined;
  if (req.method === 'POST') {
    // OAuth2 password / refresh-token grant (docker uses it when it holds an identity token).
    params = new URLSearchParams((await readBody(req, 64 * 1024)).toString('utf8'));
    const grant = params.get('grant_type');
    secret = grant === 'refresh_token' ? params.get('refresh_token') ?? undefined : params.get('password') ?? undefined;
  } else if (req.method !== 'GET') {
    throw methodNotAllowed(req.method ?? '');
  }
  const h = req.headers.authorization;
  if (secret === undefined && h) {
    const m = /^(\w+)\s+(.+)$/.exec(h.trim());
    if (m && m[1]!.toLowerCase() === 'basic') {
      const d = Buffer.from(m[2]!, 'base64').toString('utf8');
      secret = d.includes(':') ? d.slice(d.indexOf(':') + 1) : d;
    } else if (m && m[1]!.toLowerCase() === 'bearer') secret = m[2]!;
  }
  let principal: Principal | undefined;
  if (secret !== undefined) {
    try {
      principal = reg.accounts.authenticate(secret);
    } catch (e) {
      if (e instanceof HangarError && e.code === 'UNAUTHORIZED') {
        throw regErr('UNAUTHORIZED', `${e.message} (the registry takes an API token as the password; any user name)`, {
          headers: { 'www-authenticate': `Basic realm="hangar"` },
        });
      }
      throw e;
    }
  }
  const access = reg.auth.grant(principal, params.getAll('scope'));
  const issued = reg.auth.issue(principal, access);
  res.setHeader('cache-control', 'no-store');
  sendJson(res, 200, req.method === 'POST' ? { ...issued, token_type: 'Bearer', scope: params.getAll('scope').join(' ') } : issued);
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
  app: import('../accounts/index.js').App,
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
  await reg.lock.shared(async () => {
    const missingBlob = parsed.blobs.find((b) => !reg.meta.repoBlob(name, b));
    if (missingBlob) {
      throw regErr('MANIFEST_BLOB_UNKNOWN', `the manifest references blob ${missingBlob}, which is not in ${name}: push the blob first`, {
        detail: { digest: missingBlob },
      });
    }
    const missingChild = parsed.children.find((c) => !reg.meta.manifest(name, c));
    if (missingChild) {
      throw regErr('MANIFEST_UNKNOWN', `the index references manifest ${missingChild}, which is not in ${name}: push it first`, {
        detail: { digest: missingChild },
      });
    }
    if (!reg.meta.blob(d.value) || !(await reg.content.fileExists(d))) {
      const tmp = reg.content.tempPath();
      try {
        await reg.content.write(tmp, body);
        await reg.content.install(tmp, d);
      } catch (e) {
        await reg.content.remove(tmp);
        throw e;
      }
    }
    reg.options.store.db.transaction(() => {
      reg.meta.ensureRepo(name, app.id);
      reg.meta.putBlob(d.value, body.length);
      reg.meta.putManifest({
        repo: name,
        digest: d.value,
        mediaType: parsed.mediaType,
        size: body.length,
        subject: parsed.subject,
        artifactType: parsed.artifactType,
        annotations: parsed.annotations,
        refs: [...parsed.blobs, ...parsed.children],
        tag: digest ? undefined : ref,
      });
    })();
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
  access(reg, req, name, actionFor(method));
  const d = parseDigest(ref);
  if (method === 'DELETE') {
    if (!reg.meta.unlink(name, d.value)) throw regErr('BLOB_UNKNOWN', `blob ${d.value} is not in ${name}`);
    return empty(res, 202, {});
  }
  const row = reg.meta.repoBlob(name, d.value);
  if (!row) throw regErr('BLOB_UNKNOWN', `blob ${d.value} is not in ${name}`, { detail: { digest: d.value } });
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    'docker-content-digest': d.value,
    etag: `"${d.value}"`,
    'accept-ranges': 'bytes',
    'cache-control': 'max-age=31536000',
  };
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

// --- uploads --------------------------------------------------------------------------

async function uploads(
  reg: Registry,
  req: IncomingMessage,
  res: ServerResponse,
  method: string,
  name: string,
  id: string,
  query: URLSearchParams,
): Promise<void> {
  const { caller, app } = access(reg, req, name, 'push');
  if (id === '') {
    if (method !== 'POST') throw methodNotAllowed(method);
    return startUpload(reg, req, res, name, app, caller, query);
  }
  const session = await reg.uploads.get(id, name);
  switch (method) {
    case 'GET':
      return empty(res, 204, uploadHeaders(session));
    case 'DELETE':
      await reg.uploads.drop(session.id);
      return empty(res, 204, {});
    case 'PATCH': {
      const range = parseContentRange(req.headers['content-range'] as string | undefined);
      await reg.uploads.append(session, req, range);
      return empty(res, 202, uploadHeaders(session));
    }
    case 'PUT': {
      const dq = query.get('digest');
      if (!dq) throw regErr('DIGEST_INVALID', 'PUT to finish an upload needs ?digest=<algorithm:hex>');
      const digest = parseDigest(dq);
      if (hasBody(req)) {
        const range = parseContentRange(req.headers['content-range'] as string | undefined);
        await reg.uploads.append(session, req, range);
      }
      const hex = await reg.uploads.digestHex(session, digest.algorithm);
      if (hex !== digest.hex) {
        // A failed upload leaves nothing behind: the client starts over.
        await reg.uploads.drop(session.id);
        throw regErr('DIGEST_INVALID', `uploaded content has ${digest.algorithm}:${hex}, not ${digest.value}; the upload was discarded, push the blob again`, {
          detail: { expected: digest.value, actual: `${digest.algorithm}:${hex}`, size: session.size },
        });
      }
      await reg.commitBlob(reg.content.uploadPath(session.id), digest, session.size, name, app);
      await reg.uploads.drop(session.id, false);
      return empty(res, 201, { location: `/v2/${name}/blobs/${digest.value}`, 'docker-content-digest': digest.value });
    }
    default:
      throw methodNotAllowed(method);
  }
}

async function startUpload(
  reg: Registry,
  req: IncomingMessage,
  res: ServerResponse,
  name: string,
  app: import('../accounts/index.js').App,
  caller: Caller,
  query: URLSearchParams,
): Promise<void> {
  const mount = query.get('mount');
  const from = query.get('from');
  if (mount) {
    const d = parseDigest(mount);
    // The spec's answer when the source cannot be read: a normal upload session.
    if (from && reg.auth.may(caller, from, 'pull')) {
      const fromApp = reg.auth.appFor(caller.principal, from);
      if (fromApp && reg.meta.repoOwnedBy(from, fromApp.id) && reg.meta.repoBlob(from, d.value) && (await reg.content.fileExists(d))) {
        reg.options.store.db.transaction(() => {
          reg.meta.ensureRepo(name, app.id);
          reg.meta.link(name, d.value);
          reg.meta.touch(d.value);
        })();
        return empty(res, 201, { location: `/v2/${name}/blobs/${d.value}`, 'docker-content-digest': d.value });
      }
    }
  }
  const dq = query.get('digest');
  if (dq) return monolithicPost(reg, req, res, name, app, parseDigest(dq));
  const session = await reg.uploads.create(name);
  empty(res, 202, uploadHeaders(session));
}

/** POST ?digest= with the whole blob as the body: one request, hashed while written. */
async function monolithicPost(
  reg: Registry,
  req: IncomingMessage,
  res: ServerResponse,
  name: string,
  app: import('../accounts/index.js').App,
  digest: Digest,
): Promise<void> {
  const tmp = reg.content.tempPath();
  const hash = createHash(digest.algorithm);
  let size = 0;
  try {
    await pipeline(
      req,
      new Transform({
        transform(chunk: Buffer, _e, cb) {
          hash.update(chunk);
          size += chunk.length;
          cb(null, chunk);
        },
      }),
      createWriteStream(tmp, { flags: 'wx', mode: 0o600, highWaterMark: 1 << 20 }),
    );
    const hex = hash.digest('hex');
    if (hex !== digest.hex) {
      throw regErr('DIGEST_INVALID', `uploaded content has ${digest.algorithm}:${hex}, not ${digest.value}; nothing was stored, push the blob again`, {
        detail: { expected: digest.value, actual: `${digest.algorithm}:${hex}`, size },
      });
    }
    await reg.commitBlob(tmp, digest, size, name, app);
  } catch (e) {
    await reg.content.remove(tmp);
    throw e;
  }
  empty(res, 201, { location: `/v2/${name}/blobs/${digest.value}`, 'docker-content-digest': digest.value });
}

// --- admin API (Fly-style errors) ---------------------------------------------------------

async function adminApi(reg: Registry, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const principal = reg.accounts.authenticate(/^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim());
  const url = new URL(req.url ?? '/', 'http://daemon');
  if (path === '/v1/registry/gc' && req.method === 'POST') {
    reg.accounts.requireAdmin(principal, 'registry gc');
    const grace = url.searchParams.get('grace_seconds');
    const result = await reg.gc({
      dryRun: url.searchParams.get('dry_run') === 'true' || url.searchParams.get('dry_run') === '1',
      graceMs: grace !== null && /^\d+$/.test(grace) ? Number(grace) * 1000 : undefined,
    });
    return sendJson(res, 200, result);
  }
  if (path === '/v1/registry/repositories' && req.method === 'GET') {
    const db = reg.options.store.db;
    const rows = reg.meta.listRepos().filter((r) => {
      const a = reg.accounts.findApp(parseRepoName(r.name).app);
      return a !== undefined && a.id === r.app_id && reg.accounts.mayAccessOrg(principal, a.org_id);
    });
    const out = rows.map((r) => {
      const tags = (db.prepare('SELECT tag, digest, updated_at FROM registry_tags WHERE repo = ? ORDER BY tag').all(r.name) as Array<{
        tag: string;
        digest: string;
        updated_at: number;
      }>).map((t) => ({ tag: t.tag, digest: t.digest, updated_at: new Date(t.updated_at).toISOString() }));
      return { name: r.name, tags };
    });
    return sendJson(res, 200, { repositories: out });
  }
  throw new HangarError('NOT_FOUND', `no such endpoint: ${req.method} ${path}`);
}
