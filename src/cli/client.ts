import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { HangarError } from '../shared/errors.js';
import { accessToken, apiUrl } from './credentials.js';

/** The CLI's view of the daemon's HTTP API. */
export class ApiClient {
  constructor(
    readonly baseUrl: string = apiUrl(),
    private readonly token: string | undefined = accessToken(),
  ) {}

  get accessToken(): string | undefined {
    return this.token;
  }

  async request<T = unknown>(method: string, path: string, body?: unknown, init: { signal?: AbortSignal } = {}): Promise<T> {
    const res = await this.raw(method, path, body, init);
    if (res.status === 204 || res.status === 202) return undefined as T;
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * Like request, but returns the response for streaming bodies. node:http,
   * not fetch: fetch's first use loads undici, which costs the CLI a few
   * hundred milliseconds of start-up on every command.
   */
  async raw(method: string, path: string, body?: unknown, init: { signal?: AbortSignal; headers?: Record<string, string>; rawBody?: Readable } = {}): Promise<ApiResponse> {
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    let res: IncomingMessage;
    try {
      res = await new Promise<IncomingMessage>((resolve, reject) => {
        const url = new URL(this.baseUrl + path);
        const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method, headers, ...(init.signal ? { signal: init.signal } : {}) }, resolve);
        req.on('error', reject);
        if (init.rawBody) {
          // The daemon starts on the request (auth, scratch, tar) while the body is read.
          req.flushHeaders();
          init.rawBody.on('error', (e) => req.destroy(e));
          init.rawBody.pipe(req);
        } else req.end(payload);
      });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw new HangarError(
        'DAEMON_UNREACHABLE',
        `cannot reach the Hangar daemon at ${this.baseUrl}: is \`hangar daemon\` running? (set HANGAR_API_URL if it listens elsewhere)`,
        { cause: err },
      );
    }
    const status = res.statusCode ?? 0;
    const response: ApiResponse = {
      status,
      ok: status >= 200 && status < 300,
      body: res,
      text: () => readAll(res),
      header: (name) => [res.headers[name.toLowerCase()]].flat()[0],
    };
    if (response.ok) return response;
    let message = `${method} ${path} failed with HTTP ${status}`;
    let code = 'API_ERROR';
    try {
      const parsed = JSON.parse(await response.text()) as { error?: string; code?: string };
      if (parsed.error) message = parsed.error;
      if (parsed.code) code = parsed.code;
    } catch {
      /* not JSON: keep the generic message */
    }
    throw new HangarError(code, message, { status });
  }
}

/** What `raw` answers: the status and the body, as a stream or as text. */
export interface ApiResponse {
  status: number;
  ok: boolean;
  body: AsyncIterable<Buffer>;
  text(): Promise<string>;
  header(name: string): string | undefined;
}

async function readAll(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
