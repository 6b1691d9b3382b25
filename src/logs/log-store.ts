import { EventEmitter } from 'node:events';
import type { Store } from '../store/index.js';

export type LogStream = 'stdout' | 'stderr' | 'system';

export interface LogLine {
  id: number;
  /** ISO timestamp with milliseconds. */
  timestamp: string;
  app: string;
  machine_id: string;
  stream: LogStream;
  message: string;
}

export interface LogQuery {
  app: string;
  machineId?: string;
  /** Only lines with id greater than this (cursor for follow mode). */
  afterId?: number;
  limit?: number;
}

const migrations = [
  `CREATE TABLE log_lines (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     ts TEXT NOT NULL,
     app TEXT NOT NULL,
     machine_id TEXT NOT NULL,
     stream TEXT NOT NULL,
     message TEXT NOT NULL
   );
   CREATE INDEX log_lines_app ON log_lines(app, id);
   CREATE INDEX log_lines_machine ON log_lines(machine_id, id);`,
  // Where each machine's log source was read up to, committed together with
  // the lines: a re-adopted VM resumes exactly after the last stored line.
  `CREATE TABLE log_cursors (
     machine_id TEXT PRIMARY KEY,
     cursor INTEGER NOT NULL
   );`,
];

/** A single line longer than this is cut: one runaway line must not eat the store. */
export const MAX_LINE_BYTES = 16 * 1024;

/**
 * App logs: every line with timestamp, machine and stream, in SQLite, with a
 * bounded number of lines kept per machine. Writes are batched per tick (one
 * transaction) so a chatty app does not turn into thousands of commits.
 * Subscribers get lines as they are committed (follow mode).
 */
export class LogStore {
  private readonly events = new EventEmitter();
  private pending: Omit<LogLine, 'id'>[] = [];
  private pendingCursors = new Map<string, number>();
  private flushScheduled = false;
  private readonly insert;
  private appended = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly retainPerMachine = 10_000,
  ) {
    store.migrate('logs', migrations);
    this.insert = store.db.prepare('INSERT INTO log_lines (ts, app, machine_id, stream, message) VALUES (?, ?, ?, ?, ?)');
    this.events.setMaxListeners(0);
  }

  /**
   * `cursor`: the source's position just past this line (e.g. a byte offset
   * in the VM's log file); see cursor().
   */
  append(app: string, machineId: string, stream: LogStream, message: string, at = new Date(), cursor?: number): void {
    if (cursor !== undefined) this.pendingCursors.set(machineId, cursor);
    let text = message;
    if (Buffer.byteLength(text) > MAX_LINE_BYTES) text = Buffer.from(text).subarray(0, MAX_LINE_BYTES).toString('utf8') + ' [line truncated]';
    this.pending.push({ timestamp: at.toISOString(), app, machine_id: machineId, stream, message: text });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Commit buffered lines now (also called on shutdown). */
  flush(): void {
    this.flushScheduled = false;
    if (!this.pending.length || !this.store.db.open) return;
    const batch = this.pending;
    const cursors = this.pendingCursors;
    this.pending = [];
    this.pendingCursors = new Map();
    const committed: LogLine[] = [];
    this.store.db.transaction(() => {
      for (const [machineId, cursor] of cursors) {
        this.store.db
          .prepare('INSERT INTO log_cursors (machine_id, cursor) VALUES (?, ?) ON CONFLICT(machine_id) DO UPDATE SET cursor = excluded.cursor')
          .run(machineId, cursor);
      }
      for (const l of batch) {
        const r = this.insert.run(l.timestamp, l.app, l.machine_id, l.stream, l.message);
        committed.push({ ...l, id: Number(r.lastInsertRowid) });
        this.appended.set(l.machine_id, (this.appended.get(l.machine_id) ?? 0) + 1);
      }
    })();
    for (const line of committed) this.events.emit('line', line);
    this.enforceRetention();
  }

  /** The cursor stored with the machine's last committed line, if any. */
  cursor(machineId: string): number | undefined {
    this.flush();
    const row = this.store.db.prepare('SELECT cursor FROM log_cursors WHERE machine_id = ?').get(machineId) as { cursor: number } | undefined;
    return row?.cursor;
  }

  query(q: LogQuery): LogLine[] {
    this.flush();
    const limit = Math.min(Math.max(q.limit ?? 1000, 1), 10_000);
    const params: unknown[] = [q.app];
    let where = 'app = ?';
    if (q.machineId) {
      where += ' AND machine_id = ?';
      params.push(q.machineId);
    }
    if (q.afterId !== undefined) {
      where += ' AND id > ?';
      params.push(q.afterId);
      // Cursor reads go forward from the cursor.
      return this.store.db
        .prepare(`SELECT id, ts AS timestamp, app, machine_id, stream, message FROM log_lines WHERE ${where} ORDER BY id LIMIT ?`)
        .all(...params, limit) as LogLine[];
    }
    // Tail reads return the newest `limit` lines, oldest first.
    const rows = this.store.db
      .prepare(`SELECT id, ts AS timestamp, app, machine_id, stream, message FROM log_lines WHERE ${where} ORDER BY id DESC LIMIT ?`)
      .all(...params, limit) as LogLine[];
    return rows.reverse();
  }

  /** Live lines matching the query; returns an unsubscribe function. */
  subscribe(q: Pick<LogQuery, 'app' | 'machineId'>, onLine: (line: LogLine) => void): () => void {
    const listener = (line: LogLine) => {
      if (line.app === q.app && (!q.machineId || line.machine_id === q.machineId)) onLine(line);
    };
    this.events.on('line', listener);
    return () => this.events.off('line', listener);
  }

  deleteApp(app: string): void {
    this.flush();
    this.store.db.prepare('DELETE FROM log_cursors WHERE machine_id IN (SELECT DISTINCT machine_id FROM log_lines WHERE app = ?)').run(app);
    this.store.db.prepare('DELETE FROM log_lines WHERE app = ?').run(app);
  }

  private enforceRetention(): void {
    for (const [machineId, count] of this.appended) {
      // Checking every line would cost a query per line; check every 1000.
      if (count < 1000) continue;
      this.appended.set(machineId, 0);
      const cutoff = this.store.db
        .prepare('SELECT id FROM log_lines WHERE machine_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?')
        .get(machineId, this.retainPerMachine) as { id: number } | undefined;
      if (cutoff) this.store.db.prepare('DELETE FROM log_lines WHERE machine_id = ? AND id <= ?').run(machineId, cutoff.id);
    }
  }
}
