import { z } from 'zod';
import type { Accounts } from '../accounts/index.js';
import { readJson, type Router } from '../http/index.js';
import { parseInput } from '../shared/validate.js';
import type { Secrets } from '../secrets/index.js';
import { principalOf } from './auth.js';

// Values are validated (names, sizes) by Secrets.update, which never echoes them.
const updateBody = z.looseObject({
  values: z.record(z.string(), z.string().nullable()).default({}),
  stage: z.boolean().optional(),
});
const setOneBody = z.looseObject({ value: z.string() });

/**
 * Secrets API (fly-go's shape):
 *   GET    /v1/apps/:app/secrets            → {secrets:[{name,digest,status,created_at,updated_at}], version}
 *   POST   /v1/apps/:app/secrets            {values:{NAME: "v" | null}, stage?} set/unset in one change;
 *                                            {values:{}} without stage deploys staged changes
 *   GET    /v1/apps/:app/secrets/:name      → one entry (never the value)
 *   POST   /v1/apps/:app/secrets/:name      {value}
 *   DELETE /v1/apps/:app/secrets/:name
 * `?stage=true` on the writes defers the restart of the app's machines.
 */
export function secretsRoutes(router: Router, accounts: Accounts, secrets: Secrets): void {
  const appOf = (req: Parameters<typeof principalOf>[1], name: string) => accounts.getApp(principalOf(accounts, req), name).name;
  const staged = (url: URL, body?: { stage?: boolean }) => body?.stage ?? url.searchParams.get('stage') === 'true';
  const base = '/v1/apps/:app/secrets';

  router.get(base, ({ req, params }) => secrets.list(appOf(req, params.app!)));

  router.post(base, async ({ req, params, url }) => {
    const app = appOf(req, params.app!);
    const body = parseInput(updateBody, (await readJson(req)) ?? {}, 'secrets update');
    return secrets.update(app, body.values, { stage: staged(url, body) });
  });

  router.get(`${base}/:name`, ({ req, params }) => secrets.get(appOf(req, params.app!), params.name!));

  router.post(`${base}/:name`, async ({ req, params, url }) => {
    const app = appOf(req, params.app!);
    const body = parseInput(setOneBody, await readJson(req), 'secret');
    const result = await secrets.update(app, { [params.name!]: body.value }, { stage: staged(url) });
    return { ...secrets.get(app, params.name!), version: result.version, restarted: result.restarted, failed: result.failed };
  });

  router.delete(`${base}/:name`, async ({ req, params, url }) => {
    const app = appOf(req, params.app!);
    secrets.get(app, params.name!);
    const result = await secrets.update(app, { [params.name!]: null }, { stage: staged(url) });
    return { version: result.version, restarted: result.restarted, failed: result.failed };
  });
}
