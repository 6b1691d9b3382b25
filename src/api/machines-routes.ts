import { z } from 'zod';
import type { Accounts } from '../accounts/index.js';
import { readJson, type Router } from '../http/index.js';
import { parseInput } from '../shared/validate.js';
import { badRequest } from '../shared/errors.js';
import { createMachineSchema, durationToMs, duration, signalName, updateMachineSchema } from '../machines/config.js';
import type { MachineManager } from '../machines/index.js';
import type { MachineRecord, MachineState } from '../machines/records.js';
import { principalOf } from './auth.js';

const stopBody = z.looseObject({ signal: signalName.optional(), timeout: duration.optional() }).optional();
const signalBody = z.looseObject({ signal: signalName });
const execBody = z
  .looseObject({
    command: z.array(z.string()).min(1).optional(),
    cmd: z.string().min(1).optional(),
    timeout: z.number().int().min(1).max(3600).optional(),
  })
  .refine((b) => b.command || b.cmd, 'give the command to run as "command": ["prog", "arg"]');
const waitStates = ['started', 'stopped', 'destroyed', 'failed'] as const;

/** Fly's Machine shape. */
export function machineView(m: MachineRecord) {
  return {
    id: m.id,
    name: m.name,
    state: m.state,
    region: m.region,
    instance_id: m.instance_id,
    private_ip: null,
    config: m.config,
    image_ref: m.image_ref,
    created_at: m.created_at,
    updated_at: m.updated_at,
    // Hangar extras: where the guest's services are reachable on this host.
    host_ports: m.ports,
    ...(m.reason ? { reason: m.reason } : {}),
  };
}

export function machinesRoutes(router: Router, accounts: Accounts, machines: MachineManager): void {
  const appOf = (req: Parameters<typeof principalOf>[1], name: string) => accounts.getApp(principalOf(accounts, req), name).name;
  const base = '/v1/apps/:app/machines';

  router.get(base, ({ req, params, url }) => {
    const app = appOf(req, params.app!);
    return machines.list(app, url.searchParams.get('include_deleted') === 'true').map(machineView);
  });

  router.post(base, async ({ req, params }) => {
    const app = appOf(req, params.app!);
    const body = parseInput(createMachineSchema, await readJson(req), 'machine');
    return machineView(await machines.create(app, body));
  });

  router.get(`${base}/:id`, ({ req, params }) => machineView(machines.get(appOf(req, params.app!), params.id!)));

  router.post(`${base}/:id`, async ({ req, params }) => {
    const app = appOf(req, params.app!);
    const body = parseInput(updateMachineSchema, await readJson(req), 'machine');
    return machineView(await machines.update(app, params.id!, body));
  });

  router.delete(`${base}/:id`, async ({ req, params, url }) => {
    const app = appOf(req, params.app!);
    const force = url.searchParams.get('force') === 'true' || url.searchParams.get('kill') === 'true';
    await machines.destroy(app, params.id!, force);
    return { ok: true };
  });

  router.post(`${base}/:id/start`, async ({ req, params }) => {
    const app = appOf(req, params.app!);
    const m = await machines.start(app, params.id!);
    return { ok: true, previous_state: m.state, machine: machineView(m) };
  });

  router.post(`${base}/:id/stop`, async ({ req, params }) => {
    const app = appOf(req, params.app!);
    const body = parseInput(stopBody, await readJson(req), 'stop request');
    await machines.stop(app, params.id!, {
      signal: body?.signal,
      timeoutMs: body?.timeout === undefined ? undefined : durationToMs(body.timeout, 0),
    });
    return { ok: true };
  });

  router.post(`${base}/:id/restart`, async ({ req, params, url }) => {
    const app = appOf(req, params.app!);
    const timeout = url.searchParams.get('timeout');
    const signal = url.searchParams.get('signal');
    await machines.restart(app, params.id!, {
      timeoutMs: timeout ? durationToMs(parseInput(duration, timeout, 'timeout'), 0) : undefined,
      signal: signal ? parseInput(signalName, signal, 'signal') : undefined,
    });
    return { ok: true };
  });

  router.post(`${base}/:id/signal`, async ({ req, params }) => {
    const app = appOf(req, params.app!);
    const body = parseInput(signalBody, await readJson(req), 'signal request');
    await machines.signal(app, params.id!, body.signal);
    return { ok: true };
  });

  router.get(`${base}/:id/wait`, async ({ req, params, url }) => {
    const app = appOf(req, params.app!);
    const state = url.searchParams.get('state') ?? 'started';
    if (!(waitStates as readonly string[]).includes(state)) throw badRequest(`state must be one of ${waitStates.join(', ')}`);
    const timeoutS = Number(url.searchParams.get('timeout') ?? 60);
    if (!Number.isFinite(timeoutS) || timeoutS <= 0 || timeoutS > 3600) throw badRequest('timeout must be a number of seconds between 1 and 3600');
    const m = await machines.wait(app, params.id!, state as MachineState, timeoutS * 1000);
    return { ok: true, state: m.state };
  });

  router.post(`${base}/:id/exec`, async ({ req, params }) => {
    const app = appOf(req, params.app!);
    const body = parseInput(execBody, await readJson(req), 'exec request');
    const argv = body.command ?? ['/bin/sh', '-c', body.cmd!];
    return machines.exec(app, params.id!, argv, (body.timeout ?? 30) * 1000);
  });

  router.get(`${base}/:id/events`, ({ req, params }) => machines.events(appOf(req, params.app!), params.id!));
}
