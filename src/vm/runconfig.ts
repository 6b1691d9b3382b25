import { z } from 'zod';
import { HangarError } from '../shared/errors.js';
import { parseInput } from '../shared/validate.js';
import { buildCpio } from './cpio.js';
import { encodeRecords } from './records.js';
import type { RunConfig } from './types.js';

const noNul = (s: string) => !s.includes('\0');
const str = z.string().refine(noNul, 'must not contain NUL');
const strList = z.array(str).nullish();

export const runConfigSchema = z.object({
  image: z.object({
    entrypoint: strList,
    cmd: strList,
    env: z.array(str).nullish(),
    user: str.nullish(),
    workingDir: str.nullish(),
  }),
  init: z.object({ exec: strList, entrypoint: strList, cmd: strList }).optional(),
  env: z.record(z.string().regex(/^[^=\0]+$/, 'env names cannot contain = or NUL'), str).optional(),
  secrets: z.record(z.string().regex(/^[^=\0]+$/, 'secret names cannot contain = or NUL'), str).optional(),
  user: str.optional(),
  workingDir: str.optional(),
  hostname: z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/, 'must be a valid hostname').optional(),
  files: z.array(z.object({
    guestPath: z.string().regex(/^\/[^\0]*$/, 'must be an absolute path'),
    rawValue: z.string().regex(/^[A-Za-z0-9+/=\s]*$/, 'must be base64'),
    mode: z.number().int().min(0).max(0o7777).optional(),
  })).max(64).optional(),
  hosts: z.array(z.string().regex(/^[^\n\0]+$/)).optional(),
  nameservers: z.array(z.string().regex(/^[0-9a-fA-F.:]+$/)).optional(),
  debug: z.boolean().optional(),
});

/**
 * Fly's command rule: init.exec replaces everything; otherwise entrypoint
 * (override or image) + cmd (override or image). As in Docker, overriding
 * the entrypoint drops the image's CMD unless a cmd is given too.
 */
export function resolveCommand(run: RunConfig): string[] {
  if (run.init?.exec?.length) return [...run.init.exec];
  const epOverride = run.init?.entrypoint ?? null;
  const entrypoint = epOverride ?? run.image.entrypoint ?? [];
  const cmd = run.init?.cmd ?? (epOverride ? [] : run.image.cmd ?? []);
  return [...entrypoint, ...cmd];
}

/** image Env, then machine env, then secrets; later wins, first position kept. */
export function resolveEnv(run: RunConfig): string[] {
  const env = new Map<string, string>();
  for (const kv of run.image.env ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
    else if (kv) env.set(kv, '');
  }
  for (const [k, v] of Object.entries(run.env ?? {})) env.set(k, v);
  for (const [k, v] of Object.entries(run.secrets ?? {})) env.set(k, v);
  return [...env].map(([k, v]) => `${k}=${v}`);
}

export interface GuestDisks {
  root: string;
  scratch?: string;
  volumes: { serial: string; guestPath: string }[];
}

export const GUEST_NET = { ip: '10.0.2.15', mask: '255.255.255.0', gw: '10.0.2.2', dns: '10.0.2.3' } as const;

/** The run config in the guest's wire format (records, see docs/guest-init.md). */
export function compileRunConfig(input: RunConfig, disks: GuestDisks, opts: { hostname: string; rootfsType?: string; orphanTimeoutMs?: number }): Buffer {
  const run = parseInput(runConfigSchema, input, 'run config') as RunConfig;
  const argv = resolveCommand(run);
  if (!argv.length) {
    throw new HangarError('BAD_REQUEST', 'nothing to run: the image has no ENTRYPOINT or CMD and the machine config sets no init.exec or init.cmd; set one of them');
  }
  const recs: [string, string | Buffer][] = [['v', '1']];
  if (run.debug) recs.push(['debug', '1']);
  recs.push(['time', String(Date.now())]);
  if (opts.orphanTimeoutMs && opts.orphanTimeoutMs > 0) recs.push(['orphan_ms', String(Math.round(opts.orphanTimeoutMs))]);
  recs.push(['hostname', run.hostname ?? opts.hostname]);
  recs.push(['disk.root', disks.root]);
  if (opts.rootfsType) recs.push(['root.fstype', opts.rootfsType]);
  if (disks.scratch) recs.push(['disk.scratch', disks.scratch]);
  for (const a of argv) recs.push(['arg', a]);
  for (const e of resolveEnv(run)) recs.push(['env', e]);
  // The init masks secret values in app output (short values would mask
  // ordinary words, so only values of 4 bytes or more).
  for (const v of new Set(Object.values(run.secrets ?? {}))) if (Buffer.byteLength(v) >= 4 && !v.includes('\n')) recs.push(['mask', v]);
  const user = run.user ?? run.image.user ?? '';
  if (user) recs.push(['user', user]);
  const wd = run.workingDir ?? run.image.workingDir ?? '';
  if (wd) recs.push(['workdir', wd]);
  recs.push(['net.ip', GUEST_NET.ip], ['net.mask', GUEST_NET.mask], ['net.gw', GUEST_NET.gw]);
  for (const ns of run.nameservers ?? [GUEST_NET.dns]) recs.push(['net.dns', ns]);
  for (const h of run.hosts ?? []) recs.push(['hosts', h]);
  for (const f of run.files ?? []) {
    recs.push(['file.path', f.guestPath], ['file.mode', (f.mode ?? 0o644).toString(8)], ['file.data', Buffer.from(f.rawValue, 'base64')]);
  }
  for (const v of disks.volumes) recs.push(['mount.dev', v.serial], ['mount.path', v.guestPath]);
  return encodeRecords(recs);
}

/** The per-machine cpio appended to the base initramfs. */
export function configCpio(config: Buffer): Buffer {
  return buildCpio([{ name: 'hangar', mode: 0o755 }, { name: 'hangar/run.cfg', data: config, mode: 0o600 }]);
}
