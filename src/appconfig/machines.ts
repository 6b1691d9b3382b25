import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { MachineConfig } from '../machines/config.js';
import { durationToMs } from '../machines/config.js';
import { HangarError } from '../shared/errors.js';
import { VM_SIZES, type AppConfig } from './schema.js';
import { shellSplit } from './shellwords.js';

/** Fly's name for the process group of an app without [processes]. */
export const DEFAULT_GROUP = 'app';

type Scoped = { processes?: string[] | undefined };
const appliesTo = (item: Scoped, group: string) => !item.processes?.length || item.processes.includes(group);
const asList = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export function processGroups(cfg: AppConfig): string[] {
  const names = Object.keys(cfg.processes ?? {});
  return names.length ? names : [DEFAULT_GROUP];
}

type MachineCheck = NonNullable<MachineConfig['checks']>[string];
type MachineService = NonNullable<MachineConfig['services']>[number];

function headers(h: unknown): MachineCheck['headers'] {
  if (!h) return undefined;
  if (Array.isArray(h)) return h as MachineCheck['headers'];
  return Object.entries(h as Record<string, string | string[]>).map(([name, v]) => ({ name, values: Array.isArray(v) ? v : [v] }));
}

function httpCheck(c: { grace_period?: string | number; interval?: string | number; timeout?: string | number; method?: string; path?: string; headers?: unknown }, port: number): MachineCheck {
  return { type: 'http', port, grace_period: c.grace_period, interval: c.interval, timeout: c.timeout, method: c.method ?? 'GET', path: c.path ?? '/', headers: headers(c.headers) };
}

function services(cfg: AppConfig, group: string): MachineService[] {
  const out: MachineService[] = [];
  const hs = cfg.http_service;
  if (hs && appliesTo(hs, group)) {
    out.push({
      protocol: 'tcp',
      internal_port: hs.internal_port,
      ports: [
        { port: 80, handlers: ['http'], force_https: hs.force_https ?? false },
        { port: 443, handlers: ['tls', 'http'] },
      ],
      autostop: hs.auto_stop_machines,
      autostart: hs.auto_start_machines,
      min_machines_running: hs.min_machines_running,
      concurrency: hs.concurrency,
      checks: hs.checks?.map((c) => httpCheck(c, hs.internal_port)),
    });
  }
  for (const s of cfg.services ?? []) {
    if (!appliesTo(s, group)) continue;
    const checks: MachineCheck[] = [
      ...(s.tcp_checks ?? []).map((c) => ({ type: 'tcp' as const, port: s.internal_port, grace_period: c.grace_period, interval: c.interval, timeout: c.timeout })),
      ...(s.http_checks ?? []).map((c) => httpCheck(c, s.internal_port)),
    ];
    out.push({
      protocol: s.protocol,
      internal_port: s.internal_port,
      ports: s.ports,
      autostop: s.auto_stop_machines,
      autostart: s.auto_start_machines,
      min_machines_running: s.min_machines_running,
      concurrency: s.concurrency,
      checks: checks.length ? checks : undefined,
    });
  }
  return out;
}

function guest(cfg: AppConfig, group: string): MachineConfig['guest'] {
  const vm = asList(cfg.vm).find((v) => appliesTo(v, group));
  const base = VM_SIZES[vm?.size ?? 'shared-cpu-1x']!;
  return { cpus: vm?.cpus ?? base.cpus, memory_mb: vm?.memory_mb ?? vm?.memory ?? base.memory_mb, cpu_kind: vm?.cpu_kind ?? base.cpu_kind };
}

function restart(cfg: AppConfig, group: string): MachineConfig['restart'] {
  const r = asList(cfg.restart).find((v) => appliesTo(v, group));
  if (!r) return undefined;
  const policy = r.policy === 'never' || r.policy === 'no' ? 'no' : r.policy === 'always' ? 'always' : 'on-failure';
  return { policy, ...(r.retries !== undefined ? { max_retries: r.retries } : {}) };
}

const argv = (v: string | string[] | undefined) => (v === undefined ? undefined : Array.isArray(v) ? v : shellSplit(v));

/** `[[files]]` with local_path: read them (relative to the config's directory) into raw_value, base64. */
export function resolveLocalFiles(cfg: AppConfig, baseDir: string): AppConfig {
  if (!cfg.files?.some((f) => f.local_path)) return cfg;
  return {
    ...cfg,
    files: cfg.files.map((f) => {
      if (!f.local_path) return f;
      let bytes: Buffer;
      try {
        bytes = readFileSync(resolve(baseDir, f.local_path));
      } catch (e) {
        throw new HangarError('BAD_CONFIG', `[[files]] local_path ${f.local_path} for ${f.guest_path} cannot be read: ${(e as Error).message}`, { status: 400 });
      }
      return { guest_path: f.guest_path, raw_value: bytes.toString('base64'), processes: f.processes };
    }),
  };
}

export interface MachineConfigOptions {
  image: string;
  releaseId?: string;
  releaseVersion?: number;
}

/**
 * The machine config for one process group, as `fly deploy` would send it
 * to the Machines API.
 */
export function machineConfigFor(cfg: AppConfig, group: string, o: MachineConfigOptions): MachineConfig {
  if (!processGroups(cfg).includes(group)) {
    throw new HangarError('BAD_CONFIG', `process group "${group}" is not in [processes]; groups: ${processGroups(cfg).join(', ')}`, { status: 400 });
  }
  const cmd = cfg.processes?.[group] ? shellSplit(cfg.processes[group]) : argv(cfg.experimental?.cmd);
  const checks: Record<string, MachineCheck> = {};
  for (const [name, c] of Object.entries(cfg.checks ?? {})) {
    if (!appliesTo(c, group)) continue;
    const port = c.port ?? cfg.http_service?.internal_port;
    if (port === undefined) throw new HangarError('BAD_CONFIG', `checks.${name}.port: is required when there is no [http_service] to take the port from`, { status: 400 });
    checks[name] = c.type === 'http' ? httpCheck(c, port) : { type: 'tcp', port, grace_period: c.grace_period, interval: c.interval, timeout: c.timeout };
  }
  const svc = services(cfg, group);
  const files = (cfg.files ?? []).filter((f) => appliesTo(f, group));
  if (files.some((f) => f.local_path)) throw new HangarError('INTERNAL', 'resolveLocalFiles must run before machineConfigFor', { status: 500 });
  const mounts = asList(cfg.mounts).filter((m) => appliesTo(m, group));
  const env: Record<string, string> = { ...(cfg.env ?? {}), FLY_PROCESS_GROUP: group };
  if (cfg.primary_region) env.PRIMARY_REGION = cfg.primary_region;
  const metadata: Record<string, string> = { fly_process_group: group, fly_platform_version: 'v2' };
  if (o.releaseId) metadata.fly_release_id = o.releaseId;
  if (o.releaseVersion !== undefined) metadata.fly_release_version = String(o.releaseVersion);
  const entrypoint = argv(cfg.experimental?.entrypoint);
  const exec = argv(cfg.experimental?.exec);
  return {
    image: o.image,
    env,
    ...(cmd || entrypoint || exec ? { init: { ...(cmd ? { cmd } : {}), ...(entrypoint ? { entrypoint } : {}), ...(exec ? { exec } : {}) } } : {}),
    guest: guest(cfg, group),
    ...(svc.length ? { services: svc } : {}),
    ...(Object.keys(checks).length ? { checks } : {}),
    ...(restart(cfg, group) ? { restart: restart(cfg, group) } : {}),
    // Fly's default kill signal is SIGINT, not Docker's SIGTERM.
    stop_config: { signal: cfg.kill_signal ?? 'SIGINT', timeout: cfg.kill_timeout ?? 5 },
    ...(mounts.length ? { mounts: mounts.map((m) => ({ volume: m.source, name: m.source, path: m.destination })) } : {}),
    ...(files.length
      ? { files: files.map((f) => (f.secret_name ? { guest_path: f.guest_path, secret_name: f.secret_name } : { guest_path: f.guest_path, raw_value: f.raw_value! })) }
      : {}),
    metadata,
  } as MachineConfig;
}

/** Every check a machine of this config must pass, with the guest port each one probes. */
export interface ResolvedCheck {
  name: string;
  type: 'tcp' | 'http';
  port: number;
  path: string;
  method: string;
  headers: Record<string, string>;
  intervalMs: number;
  timeoutMs: number;
  gracePeriodMs: number;
}

export function checksOf(mc: MachineConfig): ResolvedCheck[] {
  const out: ResolvedCheck[] = [];
  const add = (name: string, c: MachineCheck, fallbackPort?: number) => {
    const port = c.port ?? fallbackPort;
    if (!port) return;
    out.push({
      name,
      type: c.type ?? 'tcp',
      port,
      path: c.path ?? '/',
      method: c.method ?? 'GET',
      headers: Object.fromEntries((c.headers ?? []).map((h) => [h.name, h.values[0] ?? ''])),
      intervalMs: durationToMs(c.interval, 15_000),
      timeoutMs: durationToMs(c.timeout, 2_000),
      gracePeriodMs: durationToMs(c.grace_period, 0),
    });
  };
  for (const [name, c] of Object.entries(mc.checks ?? {})) add(name, c);
  (mc.services ?? []).forEach((s, i) => (s.checks ?? []).forEach((c, j) => add(`servicecheck-${i}-${j}`, c, s.internal_port)));
  return out;
}
