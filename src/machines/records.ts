import type { Store } from '../store/index.js';
import { newId, nowIso } from '../shared/ids.js';
import type { MachineConfig } from './config.js';

export type MachineState =
  | 'created'
  | 'starting'
  | 'started'
  | 'stopping'
  | 'stopped'
  | 'destroying'
  | 'destroyed'
  | 'failed';

export interface ImageRef {
  registry: string;
  repository: string;
  tag: string;
  digest: string;
  labels: Record<string, string>;
}

export interface MachineRecord {
  id: string;
  name: string;
  app: string;
  state: MachineState;
  region: string;
  instance_id: string;
  config: MachineConfig;
  image_ref: ImageRef | null;
  created_at: string;
  updated_at: string;
  /** Host ports forwarded to the guest's service ports (guest port → host port). */
  ports: Record<string, number>;
  /** Why the machine is in its state (e.g. a boot failure), for humans. */
  reason: string | null;
  /** Restarts made by the restart policy since the last explicit start. */
  restart_count: number;
}

export interface MachineEvent {
  id: string;
  type: 'launch' | 'start' | 'exit' | 'restart' | 'update' | 'stop' | 'destroy';
  status: string;
  source: 'user' | 'flyd';
  timestamp: number;
  request?: Record<string, unknown>;
}

const migrations = [
  `CREATE TABLE machines (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     app TEXT NOT NULL,
     state TEXT NOT NULL,
     instance_id TEXT NOT NULL,
     config TEXT NOT NULL,
     image_ref TEXT,
     ports TEXT NOT NULL DEFAULT '{}',
     reason TEXT,
     restart_count INTEGER NOT NULL DEFAULT 0,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     UNIQUE (app, name)
   );
   CREATE INDEX machines_app ON machines(app);
   CREATE TABLE machine_events (
     id TEXT PRIMARY KEY,
     machine_id TEXT NOT NULL,
     type TEXT NOT NULL,
     status TEXT NOT NULL,
     source TEXT NOT NULL,
     ts INTEGER NOT NULL,
     request TEXT
   );
   CREATE INDEX machine_events_machine ON machine_events(machine_id, ts);`,
];

interface Row {
  id: string;
  name: string;
  app: string;
  state: MachineState;
  instance_id: string;
  config: string;
  image_ref: string | null;
  ports: string;
  reason: string | null;
  restart_count: number;
  created_at: string;
  updated_at: string;
}

function fromRow(r: Row): MachineRecord {
  return {
    id: r.id,
    name: r.name,
    app: r.app,
    state: r.state,
    region: 'local',
    instance_id: r.instance_id,
    config: JSON.parse(r.config) as MachineConfig,
    image_ref: r.image_ref ? (JSON.parse(r.image_ref) as ImageRef) : null,
    ports: JSON.parse(r.ports) as Record<string, number>,
    reason: r.reason,
    restart_count: r.restart_count,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}

/** Persistence of machines and their events; no lifecycle logic here. */
export class MachineRecords {
  constructor(private readonly store: Store) {
    store.migrate('machines', migrations);
  }

  private get db() {
    return this.store.db;
  }

  insert(app: string, name: string | undefined, config: MachineConfig): MachineRecord {
    const id = newId();
    const now = nowIso();
    this.db
      .prepare(
        `INSERT INTO machines (id, name, app, state, instance_id, config, created_at, updated_at)
         VALUES (?, ?, ?, 'created', ?, ?, ?, ?)`,
      )
      .run(id, name ?? `machine-${id}`, app, newId(), JSON.stringify(config), now, now);
    return this.get(id)!;
  }

  get(id: string): MachineRecord | undefined {
    const row = this.db.prepare('SELECT * FROM machines WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  findByName(app: string, name: string): MachineRecord | undefined {
    const row = this.db.prepare('SELECT * FROM machines WHERE app = ? AND name = ?').get(app, name) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  list(app?: string): MachineRecord[] {
    const rows = (app
      ? this.db.prepare('SELECT * FROM machines WHERE app = ? ORDER BY created_at').all(app)
      : this.db.prepare('SELECT * FROM machines ORDER BY created_at').all()) as Row[];
    return rows.map(fromRow);
  }

  update(
    id: string,
    patch: Partial<Pick<MachineRecord, 'state' | 'config' | 'image_ref' | 'ports' | 'reason' | 'restart_count' | 'instance_id'>>,
  ): MachineRecord {
    const sets: string[] = ['updated_at = @updated_at'];
    const values: Record<string, unknown> = { id, updated_at: nowIso() };
    for (const [k, v] of Object.entries(patch)) {
      sets.push(`${k} = @${k}`);
      values[k] = typeof v === 'object' && v !== null ? JSON.stringify(v) : v;
    }
    this.db.prepare(`UPDATE machines SET ${sets.join(', ')} WHERE id = @id`).run(values);
    return this.get(id)!;
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM machines WHERE id = ?').run(id);
    this.db.prepare('DELETE FROM machine_events WHERE machine_id = ?').run(id);
  }

  addEvent(machineId: string, ev: Omit<MachineEvent, 'id' | 'timestamp'>): MachineEvent {
    const event: MachineEvent = { id: newId(), timestamp: Date.now(), ...ev };
    this.db
      .prepare('INSERT INTO machine_events (id, machine_id, type, status, source, ts, request) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(event.id, machineId, event.type, event.status, event.source, event.timestamp, ev.request ? JSON.stringify(ev.request) : null);
    return event;
  }

  events(machineId: string, limit = 100): MachineEvent[] {
    const rows = this.db
      .prepare('SELECT * FROM machine_events WHERE machine_id = ? ORDER BY ts DESC, rowid DESC LIMIT ?')
      .all(machineId, limit) as Array<{ id: string; type: MachineEvent['type']; status: string; source: MachineEvent['source']; ts: number; request: string | null }>;
    return rows.map((r) => ({
      id: r.id,
      type: r.type,
      status: r.status,
      source: r.source,
      timestamp: r.ts,
      ...(r.request ? { request: JSON.parse(r.request) as Record<string, unknown> } : {}),
    }));
  }
}
