import { z } from 'zod';
import { duration, signalName, ENV_NAME } from '../machines/config.js';

/**
 * hangar.toml / fly.toml, as Fly documents it. Only keys Hangar acts on are
 * in the schema; keys Fly knows but Hangar does not use yet are listed in
 * keys.ts and reported as ignored, so an existing fly.toml loads unchanged.
 */

const port = z.number().int().min(1, 'must be a port number 1-65535').max(65535, 'must be a port number 1-65535');
const processList = z.array(z.string().min(1)).optional();
const strMap = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String));

const headerMap = z
  .union([z.record(z.string(), z.union([z.string(), z.array(z.string())])), z.array(z.looseObject({ name: z.string(), values: z.array(z.string()) }))])
  .optional();

const checkFields = {
  grace_period: duration.optional(),
  interval: duration.optional(),
  timeout: duration.optional(),
  method: z.string().optional(),
  path: z.string().startsWith('/', 'must start with /').optional(),
  protocol: z.enum(['http', 'https']).optional(),
  headers: headerMap,
};

export const httpCheckSchema = z.object(checkFields);
export const tcpCheckSchema = z.object({ grace_period: duration.optional(), interval: duration.optional(), timeout: duration.optional() });

export const topCheckSchema = z.object({
  ...checkFields,
  type: z.enum(['tcp', 'http'], { message: 'must be "tcp" or "http"' }),
  port: port.optional(),
  processes: processList,
});

const autostop = z.union([z.boolean(), z.enum(['off', 'stop', 'suspend'], { message: 'must be true, false, "off", "stop" or "suspend"' })]).optional();

const concurrency = z
  .object({
    type: z.enum(['connections', 'requests'], { message: 'must be "connections" or "requests"' }).default('connections'),
    soft_limit: z.number().int().positive().optional(),
    hard_limit: z.number().int().positive().optional(),
  })
  .optional();

export const httpServiceSchema = z.object({
  internal_port: port.default(8080),
  force_https: z.boolean().optional(),
  auto_stop_machines: autostop,
  auto_start_machines: z.boolean().optional(),
  min_machines_running: z.number().int().min(0).optional(),
  processes: processList,
  concurrency,
  checks: z.array(httpCheckSchema).optional(),
});

export const serviceSchema = z.object({
  internal_port: port,
  protocol: z.enum(['tcp', 'udp'], { message: 'must be "tcp" or "udp"' }).default('tcp'),
  processes: processList,
  auto_stop_machines: autostop,
  auto_start_machines: z.boolean().optional(),
  min_machines_running: z.number().int().min(0).optional(),
  concurrency,
  ports: z
    .array(z.object({ port: port.optional(), start_port: port.optional(), end_port: port.optional(), handlers: z.array(z.string()).optional(), force_https: z.boolean().optional() }))
    .optional(),
  tcp_checks: z.array(tcpCheckSchema).optional(),
  http_checks: z.array(httpCheckSchema).optional(),
});

/** "512mb", "1gb", "2GB", 1024 (MB). */
export function parseMemoryMb(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) ? v : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(mb|mib|m|gb|gib|g)?\s*$/i.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]) * (m[2] && /^g/i.test(m[2]) ? 1024 : 1);
  return Number.isInteger(n) ? n : undefined;
}

/** Fly's machine size presets. */
export const VM_SIZES: Record<string, { cpus: number; memory_mb: number; cpu_kind: string }> = {
  'shared-cpu-1x': { cpus: 1, memory_mb: 256, cpu_kind: 'shared' },
  'shared-cpu-2x': { cpus: 2, memory_mb: 512, cpu_kind: 'shared' },
  'shared-cpu-4x': { cpus: 4, memory_mb: 1024, cpu_kind: 'shared' },
  'shared-cpu-8x': { cpus: 8, memory_mb: 2048, cpu_kind: 'shared' },
  'performance-1x': { cpus: 1, memory_mb: 2048, cpu_kind: 'performance' },
  'performance-2x': { cpus: 2, memory_mb: 4096, cpu_kind: 'performance' },
  'performance-4x': { cpus: 4, memory_mb: 8192, cpu_kind: 'performance' },
  'performance-8x': { cpus: 8, memory_mb: 16384, cpu_kind: 'performance' },
  'performance-16x': { cpus: 16, memory_mb: 32768, cpu_kind: 'performance' },
};

const memory = z
  .union([z.string(), z.number()])
  .transform((v, ctx) => {
    const mb = parseMemoryMb(v);
    if (mb === undefined || mb < 64 || mb > 65536) {
      ctx.addIssue({ code: 'custom', message: 'must be a size between 64mb and 64gb, such as "512mb", "1gb" or 1024 (megabytes)' });
      return z.NEVER;
    }
    return mb;
  });

export const vmSchema = z.object({
  size: z.enum(Object.keys(VM_SIZES) as [string, ...string[]], { message: `must be one of ${Object.keys(VM_SIZES).join(', ')}` }).optional(),
  memory: memory.optional(),
  memory_mb: memory.optional(),
  cpus: z.number().int().min(1, 'must be 1-16').max(16, 'must be 1-16').optional(),
  cpu_kind: z.enum(['shared', 'performance']).optional(),
  processes: processList,
});

export const restartSchema = z.object({
  policy: z.enum(['always', 'never', 'on-failure', 'on-fail', 'no'], { message: 'must be "always", "never" or "on-failure"' }).default('on-failure'),
  retries: z.number().int().min(0).max(100).optional(),
  processes: processList,
});

export const mountSchema = z.object({
  source: z.string().regex(/^[a-z0-9_]{1,30}$/, 'must be a volume name: lowercase letters, digits and _, at most 30'),
  destination: z
    .string()
    .startsWith('/', 'must be an absolute path')
    .refine((p) => p !== '/', 'must not be / (the root filesystem is reset on every boot; mount the volume below it)'),
  processes: processList,
  initial_size: z.union([z.string(), z.number()]).optional(),
});

export const fileSchema = z
  .object({
    guest_path: z.string().startsWith('/', 'must be an absolute path'),
    raw_value: z.string().optional(),
    local_path: z.string().optional(),
    secret_name: z.string().regex(ENV_NAME, 'must be a secret name').optional(),
    processes: processList,
  })
  .refine((f) => [f.raw_value, f.local_path, f.secret_name].filter((x) => x !== undefined).length === 1, 'give exactly one of raw_value, local_path or secret_name');

const maxUnavailable = z.number().positive('must be a count ≥ 1 or a fraction between 0 and 1').refine((n) => n < 1 || Number.isInteger(n), 'must be a whole count ≥ 1 or a fraction between 0 and 1');

export const STRATEGIES = ['rolling', 'immediate', 'canary', 'bluegreen'] as const;
export type Strategy = (typeof STRATEGIES)[number];

export const deploySchema = z.object({
  strategy: z.enum(STRATEGIES, { message: `must be one of ${STRATEGIES.join(', ')}` }).optional(),
  release_command: z.string().min(1).optional(),
  release_command_timeout: duration.optional(),
  max_unavailable: maxUnavailable.optional(),
  wait_timeout: duration.optional(),
});

export const buildSchema = z.object({
  image: z.string().min(1).optional(),
  dockerfile: z.string().min(1).optional(),
  ignorefile: z.string().min(1).optional(),
  'build-target': z.string().min(1).optional(),
  build_target: z.string().min(1).optional(),
  args: strMap.optional(),
});

/** `[x]` and `[[x]]` both allowed (Fly accepts either); always an array after parsing, so errors name x.0.key. */
const tableList = <T extends z.ZodType>(s: T) => z.preprocess((v) => (v === undefined || Array.isArray(v) ? v : [v]), z.array(s));

export const appConfigSchema = z.object({
  app: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be an app name: lowercase letters, digits and dashes, starting with a letter').optional(),
  primary_region: z.string().optional(),
  kill_signal: signalName.optional(),
  kill_timeout: z
    .union([z.number().int().min(0).max(300), duration])
    .refine((d) => (typeof d === 'number' ? d <= 300 : true), 'must be at most 300 seconds')
    .optional(),
  build: buildSchema.optional(),
  deploy: deploySchema.optional(),
  env: z
    .record(z.string().regex(ENV_NAME, 'env names must be valid variable names'), z.union([z.string(), z.number(), z.boolean()]).transform(String))
    .refine((e) => !Object.keys(e).some((k) => k.startsWith('FLY_')), 'names starting with FLY_ are reserved for the platform')
    .optional(),
  http_service: httpServiceSchema.optional(),
  services: z.array(serviceSchema).optional(),
  checks: z.record(z.string(), topCheckSchema).optional(),
  mounts: tableList(mountSchema).optional(),
  processes: z
    .record(z.string().regex(/^[a-z][a-z0-9_-]{0,29}$/, 'process group names are lowercase letters, digits, _ and -'), z.string().min(1, 'must be the command to run'))
    .optional(),
  vm: tableList(vmSchema).optional(),
  restart: tableList(restartSchema).optional(),
  files: z.array(fileSchema).optional(),
  experimental: z
    .object({ cmd: z.union([z.string(), z.array(z.string())]).optional(), entrypoint: z.union([z.string(), z.array(z.string())]).optional(), exec: z.union([z.string(), z.array(z.string())]).optional() })
    .optional(),
});

export type AppConfigInput = z.input<typeof appConfigSchema>;
export type AppConfig = z.output<typeof appConfigSchema>;
