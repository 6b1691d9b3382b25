import type { Accounts } from '../accounts/index.js';
import type { Router } from '../http/index.js';
import type { LogLine, LogStore } from '../logs/index.js';
import { badRequest } from '../shared/errors.js';
import { principalOf } from './auth.js';

/**
 * GET /v1/apps/:app/logs?machine_id=&limit=&follow=true
 * Without follow: a JSON array of the newest lines. With follow: NDJSON, the
 * recent lines first and then live ones as they arrive, until the client
 * disconnects.
 */
export function logsRoutes(router: Router, accounts: Accounts, logs: LogStore): void {
  router.get('/v1/apps/:app/logs', ({ req, res, params, url }) => {
    const app = accounts.getApp(principalOf(accounts, req), params.app!).name;
    const machineId = url.searchParams.get('machine_id') ?? url.searchParams.get('instance') ?? undefined;
    const limitRaw = url.searchParams.get('limit');
    const limit = limitRaw === null ? 100 : Number(limitRaw);
    if (!Number.isInteger(limit) || limit < 0 || limit > 10_000) throw badRequest('limit must be a whole number from 0 to 10000');
    const follow = url.searchParams.get('follow') === 'true';
    const recent = limit === 0 ? [] : logs.query({ app, machineId, limit });
    if (!follow) return recent;

    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    const write = (l: LogLine) => res.write(JSON.stringify(l) + '\n');
    let last = 0;
    for (const l of recent) {
      write(l);
      last = l.id;
    }
    // Catch up on anything committed between the query and the subscription.
    const unsubscribe = logs.subscribe({ app, machineId }, (l) => {
      if (l.id > last) {
        last = l.id;
        write(l);
      }
    });
    for (const l of logs.query({ app, machineId, afterId: last })) {
      last = l.id;
      write(l);
    }
    const keepalive = setInterval(() => res.write('\n'), 15_000);
    const stop = () => {
      clearInterval(keepalive);
      unsubscribe();
    };
    req.on('close', stop);
    res.on('close', stop);
    return undefined;
  });
}
