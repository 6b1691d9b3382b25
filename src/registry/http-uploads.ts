import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { App } from '../accounts/index.js';
import { regErr } from './errors.js';
import { parseDigest, type Digest } from './digest.js';
import type { Caller } from './auth.js';
import type { Registry } from './registry.js';
import { access, empty, hasBody, methodNotAllowed, parseContentRange, uploadHeaders } from './http-util.js';

/** Blob uploads: sessions (POST, PATCH, PUT, GET, DELETE), single-request POST, cross-repository mount. */
export async function uploads(
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
  app: App,
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
      if (fromApp && reg.meta.repoOwnedBy(from, fromApp.id) && reg.meta.repoBlob(from, d.value) && (await reg.linkBlob(name, app, d.value))) {
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
  app: App,
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
