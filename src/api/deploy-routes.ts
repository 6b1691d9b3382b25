import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Accounts, App, Principal } from '../accounts/index.js';
import type { Builder } from '../build/index.js';
import { seedMirror } from '../build/index.js';
import type { Deployer } from '../deploy/index.js';
import { groupOf } from '../deploy/index.js';
import type { MachineManager } from '../machines/index.js';
import { STRATEGIES, DEFAULT_GROUP, processGroups } from '../appconfig/index.js';
import { duration, durationToMs } from '../machines/config.js';
import { readJson, bearerToken, type Router } from '../http/index.js';
import { parseInput } from '../shared/validate.js';
import { HangarError, badRequest } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { principalOf } from './auth.js';

export interface DeployRoutesDeps {
  accounts: Accounts;
  builder: Builder;
  deployer: Deployer;
  machines: MachineManager;
  /** http://host:port of this daemon (its registry). */
  registryUrl: () => string;
  log: Logger;
}

const buildOptions = z.object({
  dockerfile: z.string().min(1).default('Dockerfile'),
  target: z.string().min(1).optional(),
  build_args: z.record(z.string(), z.string()).default({}),
  secrets: z.record(z.string(), z.string()).default({}),
  no_cache: z.boolean().default(false),
  label: z.string().min(1).optional(),
});

const deployBody = z.object({
  image: z.string().min(1).optional(),
  config: z.record(z.string(), z.unknown()).default({}),
  strategy: z.enum(STRATEGIES, { message: `must be one of ${STRATEGIES.join(', ')}` }).optional(),
  wait_timeout: duration.optional(),
  detach: z.boolean().default(false),
  description: z.string().max(500).optional(),
  rollback_to: z.number().int().positive().optional(),
  skip_release_command: z.boolean().default(false),
});

const scaleBody = z.object({ group: z.string().min(1).optional(), count: z.number().int().min(0, 'must be 0 or more').max(100, 'must be at most 100') });

/** Streams NDJSON lines: {"log": ...} while working, then {"result": ...} or {"error": ...}. */
function ndjson(res: ServerResponse) {
  res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-cache' });
  res.flushHeaders();
  return {
    log: (line: string) => {
      if (!res.writableEnded) res.write(JSON.stringify({ log: line }) + '\n');
    },
    result: (value: unknown) => {
      if (!res.writableEnded) res.end(JSON.stringify({ result: value }) + '\n');
    },
    error: (err: unknown, log: Logger) => {
      const he = err instanceof HangarError ? err : undefined;
      if (!he || !he.expose) log.error('request failed', { err });
      const body = he && he.expose ? { code: he.code, message: he.message, status: he.status } : { code: 'INTERNAL', message: 'internal error; see the daemon log', status: 500 };
      if (!res.writableEnded) res.end(JSON.stringify({ error: body }) + '\n');
    },
  };
}

function userOf(accounts: Accounts, p: Principal): string {
  if (p.orgId === null) return 'admin';
  return accounts.listTokens(p.orgId).find((t) => t.id === p.tokenId)?.name ?? p.tokenId;
}

export function releaseView(r: import('../deploy/index.js').Release, withConfig = false) {
  const { config, ...rest } = r;
  return withConfig ? r : rest;
}

export function deployRoutes(router: Router, d: DeployRoutesDeps): void {
  const appOf = (req: IncomingMessage, name: string): { app: App; principal: Principal } => {
    const principal = principalOf(d.accounts, req);
    return { app: d.accounts.getApp(principal, name), principal };
  };

  router.post('/v1/apps/:app/builds', async ({ req, res, params }) => {
    const { app } = appOf(req, params.app!);
    const header = req.headers['x-hangar-build-options'];
    let raw: unknown = {};
    if (typeof header === 'string' && header) {
      try {
        raw = JSON.parse(Buffer.from(header, 'base64').toString('utf8'));
      } catch {
        throw badRequest('x-hangar-build-options must be base64-encoded JSON');
      }
    }
    const o = parseInput(buildOptions, raw, 'build options');
    const stream = ndjson(res);
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    try {
      const result = await d.builder.build(
        { app, dockerfile: o.dockerfile, target: o.target, buildArgs: o.build_args, secrets: o.secrets, noCache: o.no_cache, label: o.label },
        req,
        stream.log,
        abort.signal,
      );
      stream.result(result);
    } catch (err) {
      stream.error(err, d.log);
    }
  });

  router.post('/v1/images/seed', async ({ req, res }) => {
    const principal = principalOf(d.accounts, req);
    d.accounts.requireAdmin(principal, 'seeding the base-image mirror');
    const body = parseInput(z.object({ force: z.boolean().default(false) }).default({ force: false }), await readJson(req), 'seed request');
    const stream = ndjson(res);
    try {
      const result = await seedMirror({ registryUrl: d.registryUrl(), token: bearerToken(req)!, force: body.force, progress: stream.log });
      stream.result(result);
    } catch (err) {
      stream.error(err, d.log);
    }
  });

  router.post('/v1/apps/:app/deploys', async ({ req, res, params }) => {
    const { app, principal } = appOf(req, params.app!);
    const body = parseInput(deployBody, await readJson(req), 'deploy request');
    let image = body.image;
    let config: unknown = body.config;
    let description = body.description;
    if (body.rollback_to !== undefined) {
      const target = d.deployer.releases.get(app.id, body.rollback_to);
      if (!target) throw new HangarError('NOT_FOUND', `${app.name} has no release v${body.rollback_to}; list them with \`hangar releases\``);
      image = target.image_digest && !target.image.includes('@') ? `${target.image}@${target.image_digest}` : target.image;
      config = target.config;
      description ??= `Rollback to v${target.version}`;
    }
    if (!image) throw badRequest('give "image" (a reference in Hangar\'s registry) or "rollback_to" (a release version)');
    const req2 = {
      app,
      user: userOf(d.accounts, principal),
      image,
      config,
      strategy: body.strategy,
      waitTimeoutMs: body.wait_timeout === undefined ? undefined : durationToMs(body.wait_timeout, 0),
      description,
      skipReleaseCommand: body.skip_release_command,
    };
    if (body.detach) {
      // Answer once the release is recorded; the rollout goes on in the daemon.
      const release = await new Promise<unknown>((resolve, reject) => {
        d.deployer
          .deploy(req2, () => {}, (r) => resolve(releaseView(r)))
          .catch((err) => {
            reject(err);
            d.log.warn('detached deploy failed', { app: app.name, err: (err as Error).message });
          });
      });
      return { release, detached: true };
    }
    const stream = ndjson(res);
    try {
      const release = await d.deployer.deploy(req2, stream.log);
      stream.result({ release: releaseView(release), machines: d.deployer.appMachines(app.name).map(machineSummary) });
    } catch (err) {
      stream.error(err, d.log);
    }
  });

  router.get('/v1/apps/:app/releases', ({ req, params }) => {
    const { app } = appOf(req, params.app!);
    return { releases: d.deployer.releases.list(app.id).map((r) => releaseView(r)) };
  });

  router.get('/v1/apps/:app/status', ({ req, params }) => {
    const { app } = appOf(req, params.app!);
    const org = d.accounts.findOrg(app.org_id);
    const current = d.deployer.releases.current(app.id);
    const latest = d.deployer.releases.list(app.id)[0];
    return {
      app: app.name,
      organization: org?.slug,
      release: current ? releaseView(current) : null,
      latest_release: latest ? releaseView(latest) : null,
      image: current?.image ?? null,
      process_groups: current ? processGroups(current.config) : [DEFAULT_GROUP],
      machines: d.deployer.appMachines(app.name).map(machineSummary),
    };
  });

  router.get('/v1/apps/:app/images', ({ req, params }) => {
    const { app } = appOf(req, params.app!);
    const current = d.deployer.releases.current(app.id);
    return {
      release: current ? { version: current.version, image: current.image, digest: current.image_digest } : null,
      machines: d.deployer.appMachines(app.name).map((m) => ({
        id: m.id,
        group: groupOf(m),
        state: m.state,
        image: m.config.image,
        repository: m.image_ref?.repository ?? null,
        tag: m.image_ref?.tag ?? null,
        digest: m.image_ref?.digest ?? null,
        release_version: m.config.metadata?.fly_release_version ?? null,
      })),
    };
  });

  router.post('/v1/apps/:app/scale', async ({ req, res, params }) => {
    const { app } = appOf(req, params.app!);
    const body = parseInput(scaleBody, await readJson(req), 'scale request');
    const stream = ndjson(res);
    try {
      const machines = await d.deployer.scale(app, body.group ?? DEFAULT_GROUP, body.count, stream.log);
      stream.result({ group: body.group ?? DEFAULT_GROUP, machines: machines.map(machineSummary) });
    } catch (err) {
      stream.error(err, d.log);
    }
  });
}

function machineSummary(m: import('../machines/index.js').MachineRecord) {
  return {
    id: m.id,
    name: m.name,
    group: groupOf(m),
    state: m.state,
    image: m.config.image,
    release_version: m.config.metadata?.fly_release_version ?? null,
    host_ports: m.ports,
    updated_at: m.updated_at,
    ...(m.reason ? { reason: m.reason } : {}),
  };
}
