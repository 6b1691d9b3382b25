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

  /** Like request, but returns the Response for streaming bodies. */
  async raw(method: string, path: string, body?: unknown, init: { signal?: AbortSignal; headers?: Record<string, string>; rawBody?: BodyInit; duplex?: boolean } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let payload: BodyInit | undefined = init.rawBody;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(this.baseUrl + path, {
        method,
        headers,
        body: payload,
        signal: init.signal,
        ...(init.duplex ? { duplex: 'half' } : {}),
      } as RequestInit);
    } catch (err) {
      throw new HangarError(
        'DAEMON_UNREACHABLE',
        `cannot reach the Hangar daemon at ${this.baseUrl}: is \`hangar daemon\` running? (set HANGAR_API_URL if it listens elsewhere)`,
        { cause: err },
      );
    }
    if (res.ok) return res;
    let message = `${method} ${path} failed with HTTP ${res.status}`;
    let code = 'API_ERROR';
    try {
      const parsed = JSON.parse(await res.text()) as { error?: string; code?: string };
      if (parsed.error) message = parsed.error;
      if (parsed.code) code = parsed.code;
    } catch {
      /* not JSON: keep the generic message */
    }
    throw new HangarError(code, message, { status: res.status });
  }
}
