import { z } from 'zod';
import { mountPathProblem } from '../volumes/index.js';

/** Environment variable names, as POSIX shells accept them. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const envName = z.string().regex(ENV_NAME, 'must be a valid environment variable name (letters, digits, _; not starting with a digit)');
const strList = z.array(z.string());

/** A Go-style duration ("5s", "1m30s", "250ms") or a number of seconds. */
export const duration = z.union([
  z.number().nonnegative(),
  z.string().regex(/^(\d+(\.\d+)?(ms|s|m|h))+$|^\d+$/, 'use a duration such as 5s, 30s or 1m'),
]);

export function durationToMs(d: string | number | undefined, fallbackMs: number): number {
  if (d === undefined) return fallbackMs;
  if (typeof d === 'number') return d * 1000;
  if (/^\d+$/.test(d)) return Number(d) * 1000;
  let total = 0;
  for (const m of d.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  }
  return total;
}

export const SIGNALS = [
  'SIGABRT', 'SIGALRM', 'SIGFPE', 'SIGHUP', 'SIGILL', 'SIGINT', 'SIGKILL', 'SIGPIPE',
  'SIGQUIT', 'SIGSEGV', 'SIGTERM', 'SIGTRAP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH',
] as const;
export const signalName = z
  .string()
  .transform((s) => (s.toUpperCase().startsWith('SIG') ? s.toUpperCase() : 'SIG' + s.toUpperCase()))
  .pipe(z.enum(SIGNALS, { message: `must be one of ${SIGNALS.join(', ')}` }));

const port = z.number().int().min(1).max(65535);

const check = z.looseObject({
  type: z.enum(['tcp', 'http']).default('tcp'),
  port: port.optional(),
  interval: duration.optional(),
  timeout: duration.optional(),
  grace_period: duration.optional(),
  method: z.string().optional(),
  path: z.string().optional(),
  headers: z.array(z.looseObject({ name: z.string(), values: strList })).optional(),
});

export const serviceSchema = z.looseObject({
  protocol: z.enum(['tcp', 'udp']).default('tcp'),
  internal_port: port,
  ports: z
    .array(z.looseObject({ port: port.optional(), handlers: strList.optional(), force_https: z.boolean().optional() }))
    .optional(),
  autostart: z.boolean().optional(),
  autostop: z.union([z.boolean(), z.enum(['off', 'stop', 'suspend'])]).optional(),
  min_machines_running: z.number().int().min(0).optional(),
  concurrency: z
    .looseObject({
      type: z.enum(['connections', 'requests']).default('connections'),
      soft_limit: z.number().int().positive().optional(),
      hard_limit: z.number().int().positive().optional(),
    })
    .optional(),
  checks: z.array(check).optional(),
});

export const fileSchema = z
  .looseObject({
    guest_path: z
      .string()
      .startsWith('/', 'must be an absolute path')
      .refine((p) => !p.split('/').includes('..'), 'must not contain ..'),
    raw_value: z.string().optional(),
    secret_name: envName.optional(),
    mode: z.number().int().min(0).max(0o7777).optional(),
  })
  .refine((f) => (f.raw_value === undefined) !== (f.secret_name === undefined), 'give exactly one of raw_value or secret_name');

export const mountSchema = z.looseObject({
  volume: z.string().min(1),
  path: z.string().superRefine((p, ctx) => {
    const problem = mountPathProblem(p);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
  name: z.string().optional(),
});

/** Fly's machine config (api.MachineConfig), with the fields Hangar acts on. */
export const machineConfigSchema = z.looseObject({
  image: z.string().min(1, 'is required: the image to run, e.g. myapp:latest'),
  env: z.record(envName, z.string()).optional(),
  init: z
    .looseObject({
      exec: strList.optional(),
      entrypoint: strList.optional(),
      cmd: strList.optional(),
      tty: z.boolean().optional(),
    })
    .optional(),
  guest: z
    .looseObject({
      cpus: z.number().int().min(1).max(16).default(1),
      memory_mb: z.number().int().min(64).max(65536).default(256),
      cpu_kind: z.string().optional(),
    })
    .optional(),
  services: z.array(serviceSchema).optional(),
  checks: z.record(z.string(), check).optional(),
  restart: z
    .looseObject({
      policy: z.enum(['no', 'always', 'on-failure']).default('on-failure'),
      max_retries: z.number().int().min(0).max(100).optional(),
    })
    .optional(),
  auto_destroy: z.boolean().optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  stop_config: z.looseObject({ signal: signalName.optional(), timeout: duration.optional() }).optional(),
  mounts: z.array(mountSchema).optional(),
  files: z.array(fileSchema).optional(),
});

export type MachineConfig = z.infer<typeof machineConfigSchema>;

export const createMachineSchema = z.looseObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'use lowercase letters, digits and dashes').optional(),
  region: z.string().optional(),
  config: machineConfigSchema,
  skip_launch: z.boolean().optional(),
});

export const updateMachineSchema = createMachineSchema;
