import type { IncomingMessage, ServerResponse } from 'node:http';
import { HangarError } from '../shared/errors.js';

export type Params = Record<string, string>;
export type Handler = (ctx: RequestContext) => unknown | Promise<unknown>;

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Params;
}

interface Route {
  method: string;
  parts: string[];
  handler: Handler;
}

/**
 * A deliberately small router: `/v1/apps/:app/machines/:id`. Handlers return
 * a value (sent as JSON with 200), or write to `res` themselves, or throw a
 * HangarError (serialised by the API's error handler).
 */
export class Router {
  private readonly routes: Route[] = [];

  add(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method, parts: pattern.split('/').filter(Boolean), handler });
    return this;
  }

  get(p: string, h: Handler) { return this.add('GET', p, h); }
  post(p: string, h: Handler) { return this.add('POST', p, h); }
  put(p: string, h: Handler) { return this.add('PUT', p, h); }
  delete(p: string, h: Handler) { return this.add('DELETE', p, h); }

  /** Find the handler for a request; throws 404/405 as HangarErrors. */
  match(method: string, pathname: string): { handler: Handler; params: Params } {
    const segments = pathname.split('/').filter(Boolean);
    let pathMatched = false;
    for (const route of this.routes) {
      const params = matchParts(route.parts, segments);
      if (!params) continue;
      pathMatched = true;
      if (route.method === method || (method === 'HEAD' && route.method === 'GET')) {
        return { handler: route.handler, params };
      }
    }
    if (pathMatched) throw new HangarError('METHOD_NOT_ALLOWED', `${method} is not supported on ${pathname}`, { status: 405 });
    throw new HangarError('NOT_FOUND', `no such endpoint: ${method} ${pathname}`);
  }
}

function matchParts(parts: string[], segments: string[]): Params | undefined {
  if (parts.length !== segments.length) return undefined;
  const params: Params = {};
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    let seg: string;
    try {
      seg = decodeURIComponent(segments[i]!);
    } catch {
      return undefined;
    }
    if (part.startsWith(':')) params[part.slice(1)] = seg;
    else if (part !== seg) return undefined;
  }
  return params;
}
