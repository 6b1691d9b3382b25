import { z } from 'zod';
import type { Accounts } from '../accounts/index.js';
import { readJson, type Router } from '../http/index.js';
import { parseInput } from '../shared/validate.js';
import { sizeGb, volumeName, type SnapshotRecord, type VolumeRecord, type Volumes } from '../volumes/index.js';
import { principalOf } from './auth.js';

/** Fly's Volume shape. */
export function volumeView(v: VolumeRecord, geometry?: { block_size: number; blocks: number; blocks_free: number; blocks_avail: number }) {
  return {
    id: v.id,
    name: v.name,
    state: v.state,
    size_gb: v.size_gb,
    region: 'local',
    zone: 'local',
    encrypted: false,
    fstype: 'ext4',
    attached_machine_id: v.attached_machine_id,
    attached_alloc_id: v.attached_machine_id,
    snapshot_retention: v.snapshot_retention,
    created_at: v.created_at,
    ...(geometry ?? {}),
    // Hangar extras.
    updated_at: v.updated_at,
    source: v.source,
    ...(v.fs_size_gb < v.size_gb ? { pending_resize: true } : {}),
  };
}

/** Fly's VolumeSnapshot shape. */
export function snapshotView(s: SnapshotRecord) {
  return {
    id: s.id,
    // Fly reports a content digest; computing one means reading the whole
    // image, so Hangar leaves it empty rather than inventing one.
    digest: '',
    size: s.size,
    status: s.status,
    created_at: s.created_at,
    // Hangar extras.
    volume_id: s.volume_id,
    volume_size_gb: s.size_gb,
    expires_at: s.expires_at,
  };
}

export function volumesRoutes(router: Router, accounts: Accounts, volumes: Volumes): void {
  const appOf = (req: Parameters<typeof principalOf>[1], name: string) => accounts.getApp(principalOf(accounts, req), name).name;
  const base = '/v1/apps/:app/volumes';
  const retention = z.number().int().min(1, 'must be 1-60 days').max(60, 'must be 1-60 days');
  const createBody = z.looseObject({
    name: volumeName,
    size_gb: sizeGb(volumes.maxSizeGb).optional(),
    snapshot_id: z.string().min(1).optional(),
    source_volume_id: z.string().min(1).optional(),
    snapshot_retention: retention.optional(),
    region: z.string().optional(),
    encrypted: z.boolean().optional(),
  });
  const extendBody = z.looseObject({ size_gb: sizeGb(volumes.maxSizeGb) });
  const updateBody = z.looseObject({ snapshot_retention: retention.optional(), auto_backup_enabled: z.boolean().optional() });

  router.get(base, ({ req, params }) => volumes.list(appOf(req, params.app!)).map((v) => volumeView(v)));

  router.post(base, async ({ req, res, params }) => {
    const app = appOf(req, params.app!);
    const body = parseInput(createBody, await readJson(req), 'volume');
    const v = await volumes.create(app, body);
    res.statusCode = 200;
    return volumeView(v, await volumes.geometry(v));
  });

  router.get(`${base}/:id`, async ({ req, params }) => {
    const v = volumes.get(appOf(req, params.app!), params.id!);
    return volumeView(v, await volumes.geometry(v));
  });

  router.post(`${base}/:id`, async ({ req, params }) => {
    const app = appOf(req, params.app!);
    const body = parseInput(updateBody, (await readJson(req)) ?? {}, 'volume update');
    return volumeView(volumes.update(app, params.id!, body));
  });

  router.put(`${base}/:id/extend`, async ({ req, params }) => {
    const app = appOf(req, params.app!);
    const body = parseInput(extendBody, await readJson(req), 'extend request');
    const r = await volumes.extend(app, params.id!, body.size_gb);
    return { volume: volumeView(r.volume), needs_restart: r.needs_restart };
  });

  router.delete(`${base}/:id`, async ({ req, params }) => volumeView(await volumes.destroy(appOf(req, params.app!), params.id!)));

  router.get(`${base}/:id/snapshots`, ({ req, params }) => {
    const app = appOf(req, params.app!);
    return volumes.listSnapshots(app, resolveId(volumes, app, params.id!)).map(snapshotView);
  });

  router.post(`${base}/:id/snapshots`, async ({ req, params }) => snapshotView(await volumes.createSnapshot(appOf(req, params.app!), params.id!)));
}

/** Snapshot lists accept a destroyed volume's id, which `get` no longer finds. */
function resolveId(volumes: Volumes, app: string, ref: string): string {
  try {
    return volumes.get(app, ref).id;
  } catch {
    return ref;
  }
}
