import { createServer, request, type IncomingMessage, type RequestListener, type Server, type OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createProxy, type BackendMachine, type Proxy, type ProxyBackends, type ProxyOptions, type ProxyService } from '../../src/proxy/index.js';
import { createLogger } from '../../src/shared/log.js';

/**
 * A machine whose service is a real node HTTP server on 127.0.0.1, driven
 * by the test: `up()` listens (state started), `down()` closes (stopped).
 */
export class TestMachine implements BackendMachine {
  state = 'stopped';
  port: number | undefined;
  server: Server | undefined;
  connections = 0;
  requests = 0;
  probes = 0;
  /** Every socket, upgraded ones included (closeAllConnections skips those). */
  private readonly sockets = new Set<Socket>();
  reason: string | null = null;

  constructor(
    readonly id: string,
    readonly services: ProxyService[],
    public handler: RequestListener = echo(id),
  ) {}

  hostPort(internalPort: number): number | undefined {
    return this.services.some((s) => s.internal_port === internalPort) ? this.port : undefined;
  }

  async up(): Promise<this> {
    const server = createServer((req, res) => {
      // The proxy's readiness probe (HEAD / once per boot) is answered here so
      // tests count and hold only their own requests.
      if (req.headers['user-agent'] === 'hangar-proxy') {
        this.probes++;
        res.end();
        return;
      }
      this.requests++;
      this.handler(req, res);
    });
    server.on('connection', (sock) => {
      this.connections++;
      this.sockets.add(sock);
      sock.once('close', () => this.sockets.delete(sock));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    this.state = 'started';
    return this;
  }

  /** Crash-like: the port stops answering but the record still says started. */
  async kill(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) {
      s.closeAllConnections();
      for (const sock of this.sockets) sock.destroy();
      await new Promise<void>((r) => s.close(() => r()));
    }
  }

  async down(): Promise<void> {
    await this.kill();
    this.state = 'stopped';
    this.port = undefined;
  }
}

/** Answers JSON describing the request and which machine served it. */
export function echo(id: string): RequestListener {
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({ machine: id, method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  };
}

export class TestBackends implements ProxyBackends {
  readonly appsMap = new Map<string, TestMachine[]>();
  readonly startCalls: string[] = [];
  readonly stopCalls: string[] = [];
  /** How a start behaves; default: bring the server up after `startDelayMs`. */
  startDelayMs = 0;
  startImpl: ((m: TestMachine) => Promise<void>) | undefined;

  add(app: string, ...machines: TestMachine[]): this {
    this.appsMap.set(app, [...(this.appsMap.get(app) ?? []), ...machines]);
    return this;
  }

  machinesFor(app: string): BackendMachine[] | undefined {
    return this.appsMap.get(app);
  }

  private find(app: string, id: string): TestMachine {
    const m = this.appsMap.get(app)?.find((x) => x.id === id);
    if (!m) throw new Error(`no machine ${id}`);
    return m;
  }

  async start(app: string, id: string): Promise<void> {
    this.startCalls.push(id);
    const m = this.find(app, id);
    m.state = 'starting';
    try {
      if (this.startImpl) await this.startImpl(m);
      else {
        await new Promise((r) => setTimeout(r, this.startDelayMs));
        await m.up();
      }
    } catch (err) {
      m.state = 'failed';
      throw err;
    }
  }

  async stop(app: string, id: string): Promise<void> {
    this.stopCalls.push(id);
    await this.find(app, id).down();
  }

  apps(): string[] {
    return [...this.appsMap.keys()];
  }

  async close(): Promise<void> {
    for (const ms of this.appsMap.values()) for (const m of ms) await m.kill();
  }
}

export interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
  json(): any;
}

/** One HTTP request through the proxy with an explicit Host header. */
export function call(
  port: number,
  host: string,
  opts: { method?: string; path?: string; headers?: OutgoingHttpHeaders; body?: string | Buffer; agent?: any } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path ?? '/', headers: { host, ...opts.headers }, agent: opts.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body) });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

export const web = (port: number): ProxyService => ({ internal_port: port, ports: [{ port: 80, handlers: ['http'] }] });

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const quiet = createLogger(() => {});

/** A proxy over `backends` on an ephemeral loopback port for the duration of `fn`. */
export async function withProxy(backends: TestBackends, opts: Partial<ProxyOptions>, fn: (port: number, proxy: Proxy) => Promise<void>): Promise<void> {
  const proxy = createProxy({ backends, log: quiet, probeIntervalMs: 20, ...opts });
  const port = await proxy.listen('127.0.0.1', 0);
  try {
    await fn(port, proxy);
  } finally {
    await proxy.close();
    await backends.close();
  }
}
