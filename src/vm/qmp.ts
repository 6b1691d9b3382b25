import { connect, type Socket } from 'node:net';
import { EventEmitter } from 'node:events';

/** Just enough QMP: handshake, execute, and a 'close' when qemu goes away. */
export class QmpClient extends EventEmitter<{ close: []; event: [string, unknown] }> {
  private sock: Socket | null = null;
  private pending: { resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];
  private buf = '';

  static async connect(path: string, timeoutMs: number, isAlive: () => boolean): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const c = new QmpClient();
      try {
        await c.open(path);
        await c.execute('qmp_capabilities');
        return c;
      } catch (e) {
        c.close();
        if (Date.now() > deadline || !isAlive()) throw e;
        await new Promise((r) => setTimeout(r, 15));
      }
    }
  }

  private open(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = connect(path);
      this.sock = s;
      let greeted = false;
      s.setEncoding('utf8');
      s.on('error', (e) => { if (!greeted) reject(e); });
      s.on('close', () => {
        if (!greeted) reject(new Error('QMP closed before greeting'));
        for (const p of this.pending.splice(0)) p.reject(new Error('QMP connection closed'));
        this.emit('close');
      });
      s.on('data', (d: string) => {
        this.buf += d;
        let nl: number;
        while ((nl = this.buf.indexOf('\n')) >= 0) {
          const line = this.buf.slice(0, nl).trim();
          this.buf = this.buf.slice(nl + 1);
          if (!line) continue;
          let msg: Record<string, unknown>;
          try { msg = JSON.parse(line); } catch { continue; }
          if ('QMP' in msg) { greeted = true; resolve(); continue; }
          if ('event' in msg) { this.emit('event', String(msg.event), msg.data); continue; }
          const p = this.pending.shift();
          if (!p) continue;
          if ('error' in msg) p.reject(new Error(JSON.stringify(msg.error)));
          else p.resolve(msg.return);
        }
      });
    });
  }

  execute(cmd: string, args?: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (!this.sock || this.sock.destroyed) { reject(new Error('QMP not connected')); return; }
      this.pending.push({ resolve, reject });
      this.sock.write(JSON.stringify(args ? { execute: cmd, arguments: args } : { execute: cmd }) + '\n');
    });
  }

  close(): void {
    this.sock?.destroy();
    this.sock = null;
  }
}
