import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HangarError } from '../shared/errors.js';
import { regErr } from './errors.js';
import { uploadLocation, type Session } from './uploads.js';
import type { Registry } from './registry.js';

/** Small helpers shared by the registry's HTTP handlers. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(res.req?.method === 'HEAD' ? undefined : text);
}

export function empty(res: ServerResponse, status: number, headers: Record<string, string>): void {
  res.writeHead(status, { 'content-length': '0', ...headers });
  res.end();
}

export function methodNotAllowed(method: string): HangarError {
  return regErr('UNSUPPORTED', `${method} is not supported on this endpoint`, { status: 405 });
}

export function access(reg: Registry, req: IncomingMessage, name: string, action: 'pull' | 'push' | 'delete') {
  const caller = reg.auth.identify(req, `repository:${name}:${action === 'push' ? 'pull,push' : action}`);
  const app = reg.auth.authorize(req, caller, name, action);
  reg.syncRepo(name, app);
  return { caller: caller!, app };
}

export function actionFor(method: string): 'pull' | 'push' | 'delete' {
  if (method === 'GET' || method === 'HEAD') return 'pull';
  if (method === 'DELETE') return 'delete';
  return 'push';
}

export function hasBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}

export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

export function tooLarge(limit: number) {
  return regErr('MANIFEST_INVALID', `manifest is larger than ${limit} bytes: split it (an index of smaller manifests) or move data into blobs`, {
    status: 413,
    detail: { limit },
  });
}

export function paginate(items: string[], query: URLSearchParams, base: string): { page: string[]; link?: string } {
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

export function parseContentRange(h: string | undefined): { start: number; end: number } | undefined {
  if (!h) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/\d+|\/\*)?$/.exec(h.trim());
  if (!m) throw regErr('BLOB_UPLOAD_INVALID', `Content-Range ${JSON.stringify(h)} is not <start>-<end>`, { status: 416 });
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw regErr('BLOB_UPLOAD_INVALID', `Content-Range ${h} ends before it starts`, { status: 416 });
  return { start, end };
}

export function uploadHeaders(s: Session): Record<string, string> {
  return { location: uploadLocation(s), range: `0-${Math.max(0, s.size - 1)}`, 'docker-upload-uuid': s.id };
}
