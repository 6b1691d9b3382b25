import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Store } from '../store/index.js';
import type { Logger } from '../shared/log.js';
import { HangarError, badRequest, conflict, notFound } from '../shared/errors.js';
import { newId, nowIso } from '../shared/ids.js';
import type { GuestMount, MachineConfig } from '../machines/index.js';
import { volumesMigrations } from './schema.js';
import { GIB, allocatedBytes, copyImage, geometry, growFile, growOffline, growOfflineSync, makeFilesystem } from './images.js';
import { DEFAULT_SIZE_GB, DEFAULT_SNAPSHOT_RETENTION_DAYS, MAX_SIZE_GB, VOLUME_NAME, mountPathProblem, normaliseMountPath } from './validate.js';

export interface VolumeRecord {
  id: string;
  app: string;
  name: string;
  size_gb: number;
  fs_size_gb: number;
  state: string;
  attached_machine_id: string | null;
  snapshot_retention: number;
  source: string | null;
  created_at: string;
  updated_at: string;
}

export interface SnapshotRecord {
  id: string;
  app: string;
  volume_id: string;
  size_gb: number;
  /** Bytes allocated on the host. */
  size: number;
  status: string;
  created_at: string;
  expires_at: string;
}

export interface CreateVolumeInput {
  name: string;
  size_gb?: number;
  snapshot_id?: string;
  source_volume_id?: string;
  snapshot_retention?: number;
}

export interface VolumesOptions {
  store: Store;
  dataDir: string;
  log: Logger;
  maxSizeGb?: number;
  /**
   * The state of a machine ("started", "destroyed"...), or undefined when no
   * such machine exists. Without it every holder counts as alive.
   */
  machineState?(machineId: string): string | undefined;
  /**
   * Hold a running machine's volume still (freeze its filesystem in the
   * guest) so its image is consistent while it is copied; resolves to the
   * release, which must reject when the hold did not last. Without it,
   * snapshots and forks of a volume in use by a running machine are refused.
   */
  quiesce?(machineId: string, volume: { id: string; imagePath: string; holdMs: number }): Promise<() => Promise<void>>;
  /**
   * Grow a running machine's mounted volume online (the image file already
   * has the new size). Resolves false when that machine cannot do it now;
   * then, as on a failure, the filesystem grows at the machine's next boot.
   */
  growOnline?(machineId: string, volume: { id: string; imagePath: string }, bytes: number): Promise<boolean>;
}

const RUNNING = new Set(['starting', 'started', 'stopping', 'replacing']);
const MAX_MOUNTS = 8;
const DAY_MS = 86_400_000;

/**
 * Volumes: sparse ext4 images in <data>/volumes, attached to one machine at
 * a time. The attach lock lives in SQLite (volumes.attached_machine_id) and
 * is held until the machine is destroyed, like Fly's. Long operations
 * (extend, snapshot, fork, destroy) also take an in-process busy mark so a
 * boot cannot attach an image while it is being rewritten.
 */
export class Volumes {
  private readonly dir: string;
  private readonly snapDir: string;
  private readonly busy = new Map<string, string>();
  readonly maxSizeGb: number;

  constructor(private readonly o: VolumesOptions) {
    o.store.migrate('volumes', volumesMigrations);
    this.maxSizeGb = o.maxSizeGb ?? MAX_SIZE_GB;
    this.dir = join(o.dataDir, 'volumes');
    this.snapDir = join(this.dir, 'snapshots');
    mkdirSync(this.snapDir, { recursive: true, mode: 0o700 });
    // Half-made images from a crash mid-create have no row: remove them.
    for (const d of [this.dir, this.snapDir]) {
      for (const f of readdirSync(d)) if (f.endsWith('.tmp')) rmSync(join(d, f), { force: true });
    }
    this.pruneSnapshots();
  }

  private get db() {
    return this.o.store.db;
  }

  imagePath(id: string): string {
    return join(this.dir, `${id}.ext4`);
  }

  snapshotPath(id: string): string {
    return join(this.snapDir, `${id}.ext4`);
  }

  // --- queries ---------------------------------------------------------------

  list(app: string): VolumeRecord[] {
    return (this.db.prepare('SELECT * FROM volumes WHERE app = ? ORDER BY created_at, id').all(app) as VolumeRecord[]).map((v) => this.live(v));
  }

  /** By id, or by name when exactly one volume of the app has it. */
  get(app: string, idOrName: string): VolumeRecord {
    const byId = this.db.prepare('SELECT * FROM volumes WHERE id = ? AND app = ?').get(idOrName, app) as VolumeRecord | undefined;
    if (byId) return this.live(byId);
    const byName = this.db.prepare('SELECT * FROM volumes WHERE name = ? AND app = ?').all(idOrName, app) as VolumeRecord[];
    if (byName.length === 1) return this.live(byName[0]!);
    if (byName.length > 1) throw conflict(`app ${app} has ${byName.length} volumes named ${idOrName}; use a volume id (hangar volumes list -a ${app})`);
    throw notFound(`volume ${idOrName} not found in app ${app}; list them with \`hangar volumes list -a ${app}\``);
  }

  async geometry(v: VolumeRecord) {
    return geometry(this.imagePath(v.id));
  }

  listSnapshots(app: string, volumeId: string): SnapshotRecord[] {
    this.pruneSnapshots();
    const snaps = this.db.prepare('SELECT * FROM volume_snapshots WHERE app = ? AND volume_id = ? ORDER BY created_at, id').all(app, volumeId) as SnapshotRecord[];
    // Snapshots outlive their volume (until they expire); a volume that
    // never existed is an error.
    if (!snaps.length) this.get(app, volumeId);
    return snaps;
  }

  getSnapshot(app: string, id: string): SnapshotRecord {
    const s = this.db.prepare('SELECT * FROM volume_snapshots WHERE id = ? AND app = ?').get(id, app) as SnapshotRecord | undefined;
    if (!s) throw notFound(`snapshot ${id} not found in app ${app}; list a volume's snapshots with \`hangar volumes snapshots list VOLUME_ID\``);
    return s;
  }

  // --- create / extend / destroy -----------------------------------------------

  async create(app: string, input: CreateVolumeInput): Promise<VolumeRecord> {
    if (!VOLUME_NAME.test(input.name)) throw badRequest('invalid volume name: use 1-30 lowercase letters, digits and underscores');
    if (input.snapshot_id && input.source_volume_id) throw badRequest('give snapshot_id or source_volume_id, not both');
    const retention = input.snapshot_retention ?? DEFAULT_SNAPSHOT_RETENTION_DAYS;
    const id = `vol_${newId()}`;
    const path = this.imagePath(id);
    const tmp = `${path}.tmp`;
    let size = input.size_gb;
    let source: string | null = null;
    try {
      if (input.snapshot_id) {
        const snap = this.getSnapshot(app, input.snapshot_id);
        size = this.checkSize(size ?? snap.size_gb, snap.size_gb, `snapshot ${snap.id}`);
        await copyImage(this.snapshotPath(snap.id), tmp);
        chmodSync(tmp, 0o600);
        source = snap.id;
      } else if (input.source_volume_id) {
        const src = this.get(app, input.source_volume_id);
        size = this.checkSize(size ?? src.size_gb, src.size_gb, `volume ${src.id}`);
        await this.withBusy(src.id, 'forking', () => this.consistentCopy(src, tmp));
        source = src.id;
      } else {
        size = this.checkSize(size ?? DEFAULT_SIZE_GB, 0, '');
        await makeFilesystem(tmp, size, input.name);
        chmodSync(tmp, 0o600);
      }
      if (source) await growOffline(tmp, size);
      renameSync(tmp, path);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    const now = nowIso();
    const v: VolumeRecord = {
      id, app, name: input.name, size_gb: size, fs_size_gb: size, state: 'created', attached_machine_id: null,
      snapshot_retention: retention, source, created_at: now, updated_at: now,
    };
    try {
      this.db
        .prepare(
          `INSERT INTO volumes (id, app, name, size_gb, fs_size_gb, state, attached_machine_id, snapshot_retention, source, created_at, updated_at)
           VALUES (@id, @app, @name, @size_gb, @fs_size_gb, @state, @attached_machine_id, @snapshot_retention, @source, @created_at, @updated_at)`,
        )
        .run(v);
    } catch (err) {
      rmSync(path, { force: true });
      throw err;
    }
    this.o.log.info('volume created', { app, volume: id, name: v.name, size_gb: size, source });
    return v;
  }

  /**
   * Grow a volume. Unused: the image and its ext4 now (resize2fs). In use by
   * a running machine: the image now, then online through the machine (qemu
   * block_resize, ext4 online resize in the guest); if that cannot be done,
   * the filesystem grows at the machine's next boot (`needs_restart`).
   */
  async extend(app: string, idOrName: string, sizeGb: number): Promise<{ volume: VolumeRecord; needs_restart: boolean }> {
    const v = this.get(app, idOrName);
    if (!Number.isInteger(sizeGb) || sizeGb <= v.size_gb) {
      throw badRequest(`size_gb must be larger than the volume's current ${v.size_gb} GB (volumes can grow, not shrink)`);
    }
    if (sizeGb > this.maxSizeGb) throw badRequest(`size_gb must be at most ${this.maxSizeGb} GB`);
    return this.withBusy(v.id, 'extending', async () => {
      const cur = this.get(app, v.id);
      const running = this.isRunning(cur.attached_machine_id);
      let pending = false;
      if (running) {
        await growFile(this.imagePath(v.id), sizeGb);
        pending = !(await this.growOnline(cur, sizeGb));
      } else await growOffline(this.imagePath(v.id), sizeGb);
      this.db
        .prepare('UPDATE volumes SET size_gb = ?, fs_size_gb = ?, updated_at = ? WHERE id = ?')
        .run(sizeGb, pending ? cur.fs_size_gb : sizeGb, nowIso(), v.id);
      return { volume: this.get(app, v.id), needs_restart: pending };
    });
  }

  /** Fly's volume update: only the snapshot retention is Hangar's to change. */
  update(app: string, idOrName: string, input: { snapshot_retention?: number }): VolumeRecord {
    const v = this.get(app, idOrName);
    if (input.snapshot_retention !== undefined) {
      this.db.prepare('UPDATE volumes SET snapshot_retention = ?, updated_at = ? WHERE id = ?').run(input.snapshot_retention, nowIso(), v.id);
    }
    return this.get(app, v.id);
  }

  async destroy(app: string, idOrName: string): Promise<VolumeRecord> {
    const v = this.get(app, idOrName);
    return this.withBusy(v.id, 'being destroyed', async () => {
      const cur = this.get(app, v.id);
      if (cur.attached_machine_id) {
        throw conflict(
          `volume ${v.id} (${v.name}) is attached to machine ${cur.attached_machine_id}; destroy that machine first (hangar machine destroy ${cur.attached_machine_id} -a ${app}), then the volume`,
        );
      }
      this.db.prepare('DELETE FROM volumes WHERE id = ?').run(v.id);
      rmSync(this.imagePath(v.id), { force: true });
      this.o.log.info('volume destroyed', { app, volume: v.id });
      return { ...cur, state: 'destroyed', updated_at: nowIso() };
    });
  }

  // --- snapshots ---------------------------------------------------------------

  async createSnapshot(app: string, idOrName: string): Promise<SnapshotRecord> {
    const v = this.get(app, idOrName);
    const id = `vs_${newId()}`;
    const path = this.snapshotPath(id);
    const tmp = `${path}.tmp`;
    await this.withBusy(v.id, 'being snapshotted', async () => {
      try {
        await this.consistentCopy(this.get(app, v.id), tmp);
        renameSync(tmp, path);
      } catch (err) {
        rmSync(tmp, { force: true });
        throw err;
      }
    });
    chmodSync(path, 0o400);
    const now = new Date();
    const snap: SnapshotRecord = {
      id, app, volume_id: v.id, size_gb: v.size_gb, size: allocatedBytes(path), status: 'created',
      created_at: now.toISOString(), expires_at: new Date(now.getTime() + v.snapshot_retention * DAY_MS).toISOString(),
    };
    this.db
      .prepare(
        `INSERT INTO volume_snapshots (id, app, volume_id, size_gb, size, status, created_at, expires_at)
         VALUES (@id, @app, @volume_id, @size_gb, @size, @status, @created_at, @expires_at)`,
      )
      .run(snap);
    this.o.log.info('volume snapshot created', { app, volume: v.id, snapshot: id });
    return snap;
  }

  // --- machines ----------------------------------------------------------------

  /**
   * Take the attach lock for every volume in `config.mounts` for
   * `machineId` and return what the VM driver needs. All or nothing: if one
   * volume is held by another machine, none is taken.
   */
  attach(app: string, machineId: string, config: MachineConfig): GuestMount[] {
    const mounts = config.mounts ?? [];
    if (mounts.length > MAX_MOUNTS) throw badRequest(`a machine can mount at most ${MAX_MOUNTS} volumes`);
    const paths: string[] = [];
    for (const m of mounts) {
      const problem = mountPathProblem(m.path);
      if (problem) throw badRequest(`mount path ${m.path}: ${problem}`);
      const p = normaliseMountPath(m.path);
      const clash = paths.find((q) => q === p || p.startsWith(q + '/') || q.startsWith(p + '/'));
      if (clash) throw badRequest(`mount paths ${clash} and ${p} overlap; give each volume its own directory`);
      paths.push(p);
    }
    const chosen = this.db.transaction(() => {
      const picked: VolumeRecord[] = [];
      for (const m of mounts) {
        const v = this.pick(app, machineId, m.volume, picked);
        picked.push(v);
      }
      // Release what this machine held but no longer mounts (its config changed).
      const keep = new Set(picked.map((v) => v.id));
      for (const old of this.db.prepare('SELECT id FROM volumes WHERE attached_machine_id = ?').all(machineId) as { id: string }[]) {
        if (!keep.has(old.id)) this.db.prepare('UPDATE volumes SET attached_machine_id = NULL, updated_at = ? WHERE id = ?').run(nowIso(), old.id);
      }
      for (const v of picked) {
        const r = this.db
          .prepare('UPDATE volumes SET attached_machine_id = ?, updated_at = ? WHERE id = ? AND (attached_machine_id IS NULL OR attached_machine_id = ?)')
          .run(machineId, nowIso(), v.id, machineId);
        if (r.changes !== 1) throw conflict(`volume ${v.id} was attached by another machine at the same moment; try again`);
      }
      return picked;
    })();
    return chosen.map((v, i) => {
      if (v.fs_size_gb < v.size_gb) {
        // Finish an extend made while the volume was in use.
        growOfflineSync(this.imagePath(v.id));
        this.db.prepare('UPDATE volumes SET fs_size_gb = size_gb WHERE id = ?').run(v.id);
      }
      return { imagePath: this.imagePath(v.id), guestPath: normaliseMountPath(mounts[i]!.path), volumeId: v.id };
    });
  }

  /**
   * Called when a machine's VM is gone. The attach lock stays with the
   * machine until it is destroyed (like Fly); here we only drop locks of
   * machines that no longer exist.
   */
  detach(_machineId: string): void {
    this.releaseStale();
  }

  /** Remove everything of a deleted app: volumes (attached or not) and snapshots. */
  deleteApp(app: string): void {
    const vols = this.db.prepare('SELECT id FROM volumes WHERE app = ?').all(app) as { id: string }[];
    const snaps = this.db.prepare('SELECT id FROM volume_snapshots WHERE app = ?').all(app) as { id: string }[];
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM volumes WHERE app = ?').run(app);
      this.db.prepare('DELETE FROM volume_snapshots WHERE app = ?').run(app);
    })();
    for (const v of vols) rmSync(this.imagePath(v.id), { force: true });
    for (const s of snaps) rmSync(this.snapshotPath(s.id), { force: true });
  }

  // --- internals ---------------------------------------------------------------

  private checkSize(size: number, min: number, what: string): number {
    if (!Number.isInteger(size) || size < 1) throw badRequest('size_gb must be a whole number of gigabytes, at least 1');
    if (size > this.maxSizeGb) throw badRequest(`size_gb must be at most ${this.maxSizeGb} GB`);
    if (size < min) throw badRequest(`size_gb must be at least ${min} GB, the size of ${what}`);
    return size;
  }

  /** The machine holding a volume still counts while it exists and is not destroyed. */
  private holderAlive(machineId: string | null): boolean {
    if (!machineId) return false;
    if (!this.o.machineState) return true;
    const state = this.o.machineState(machineId);
    return state !== undefined && state !== 'destroyed';
  }

  private isRunning(machineId: string | null): boolean {
    if (!machineId) return false;
    if (!this.o.machineState) return true;
    return RUNNING.has(this.o.machineState(machineId) ?? '');
  }

  /** A record with a stale attach lock shown (and stored) as free. */
  private live(v: VolumeRecord): VolumeRecord {
    if (v.attached_machine_id && !this.holderAlive(v.attached_machine_id)) {
      this.db.prepare('UPDATE volumes SET attached_machine_id = NULL WHERE id = ? AND attached_machine_id = ?').run(v.id, v.attached_machine_id);
      return { ...v, attached_machine_id: null };
    }
    return v;
  }

  private releaseStale(): void {
    for (const v of this.db.prepare('SELECT * FROM volumes WHERE attached_machine_id IS NOT NULL').all() as VolumeRecord[]) this.live(v);
  }

  /** Resolve a mounts[].volume (id or name) to a volume this machine may take. */
  private pick(app: string, machineId: string, ref: string, already: VolumeRecord[]): VolumeRecord {
    const taken = new Set(already.map((v) => v.id));
    const byId = this.db.prepare('SELECT * FROM volumes WHERE id = ? AND app = ?').get(ref, app) as VolumeRecord | undefined;
    const candidates = byId ? [byId] : (this.db.prepare('SELECT * FROM volumes WHERE name = ? AND app = ? ORDER BY created_at, id').all(ref, app) as VolumeRecord[]);
    if (!candidates.length) {
      throw notFound(`volume ${ref} not found in app ${app}; create it with \`hangar volumes create ${VOLUME_NAME.test(ref) ? ref : 'NAME'} -a ${app}\``);
    }
    const live = candidates.map((v) => this.live(v)).filter((v) => !taken.has(v.id));
    const mine = live.find((v) => v.attached_machine_id === machineId);
    const free = live.find((v) => v.attached_machine_id === null);
    const v = mine ?? free;
    if (!v) {
      const held = live[0] ?? candidates[0]!;
      throw new HangarError(
        'VOLUME_IN_USE',
        `volume ${held.id} (${held.name}) is attached to machine ${held.attached_machine_id}: a volume belongs to one machine at a time. ` +
          `Use that machine, destroy it first, or give this machine its own volume (hangar volumes create ${held.name} -a ${app}, or hangar volumes fork ${held.id} -a ${app})`,
        { status: 409 },
      );
    }
    if (this.busy.has(v.id)) throw conflict(`volume ${v.id} is ${this.busy.get(v.id)}; try again in a moment`);
    if (!existsSync(this.imagePath(v.id))) throw new HangarError('VOLUME_MISSING', `the image of volume ${v.id} is missing from ${this.dir}`, { status: 500 });
    return v;
  }

  private async withBusy<T>(id: string, what: string, fn: () => Promise<T>): Promise<T> {
    const cur = this.busy.get(id);
    if (cur) throw conflict(`volume ${id} is ${cur}; try again in a moment`);
    this.busy.set(id, what);
    try {
      return await fn();
    } finally {
      this.busy.delete(id);
    }
  }

  /** The online half of extend; false when the filesystem must wait for the next boot. */
  private async growOnline(v: VolumeRecord, sizeGb: number): Promise<boolean> {
    if (!this.o.growOnline) return false;
    try {
      return await this.o.growOnline(v.attached_machine_id!, { id: v.id, imagePath: this.imagePath(v.id) }, sizeGb * GIB);
    } catch (err) {
      this.o.log.warn('online volume extend failed; the filesystem grows at the next boot', { app: v.app, volume: v.id, machine: v.attached_machine_id, error: err instanceof Error ? err.message : String(err) });
      return false;
    }
  }

  /** Copy a volume image; a running holder's filesystem is frozen for the copy (or it is refused). */
  private async consistentCopy(v: VolumeRecord, to: string): Promise<void> {
    let release: (() => Promise<void>) | undefined;
    const from = this.imagePath(v.id);
    if (this.isRunning(v.attached_machine_id)) {
      if (!this.o.quiesce) {
        throw conflict(
          `volume ${v.id} is in use by running machine ${v.attached_machine_id}; a copy taken now could be torn. Stop the machine (hangar machine stop ${v.attached_machine_id} -a ${v.app}) and try again`,
        );
      }
      // Writers wait while the copy runs: hold long enough for a plain
      // (non-reflink) copy of what is allocated, at a pessimistic 20 MB/s.
      const holdMs = Math.min(600_000, 60_000 + Math.ceil(allocatedBytes(from) / 20e6) * 1000);
      release = await this.o.quiesce(v.attached_machine_id!, { id: v.id, imagePath: from, holdMs });
    }
    let failed = false;
    try {
      await copyImage(from, to);
      chmodSync(to, 0o600);
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      // Always release; its error (the hold did not last) fails the copy.
      if (release) {
        const p = release();
        if (failed) await p.catch(() => {});
        else await p;
      }
    }
  }

  private pruneSnapshots(): void {
    const expired = this.db.prepare('SELECT id FROM volume_snapshots WHERE expires_at < ?').all(nowIso()) as { id: string }[];
    for (const s of expired) {
      this.db.prepare('DELETE FROM volume_snapshots WHERE id = ?').run(s.id);
      rmSync(this.snapshotPath(s.id), { force: true });
    }
  }
}
