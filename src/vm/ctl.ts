import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { HangarError } from '../shared/errors.js';
import { encodeRecords, field, MessageDecoder, type GuestRecord } from './records.js';

interface Pending { resolve: (m: GuestRecord[]) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

/**
 * Host side of the control channel (virtio-serial port "hangar.ctl", a qemu
 * unix-socket chardev). Reconnects for as long as the VM lives, so a new
 * daemon process can pick the conversation up again.
 */
export class CtlClient extends EventEmitter<{ event: [GuestRecord[]]; connect: [] }> {
  private sock: Socket | null = null;
  private connected = false;
  private closed = false;
  private queue: Buffer[] = [];
  private pending = new Map<string, Pending>();
  private nextId = 1;
  private retry: NodeJS.Timeout | null = null;

  constructor(private path: string, private isAlive: () => boolean) { super(); }

  start(): void { this.connectOnce(); }

  private connectOnce(): void {
    if (this.closed || !this.isAlive()) return;
    const s = connect(this.path);
    const dec = new MessageDecoder();
    this.sock = s;
    s.on('connect', () => {
      this.connected = true;
      for (const b of this.queue.splice(0)) s.write(b);
      this.emit('connect');
    });
    s.on('data', (d: Buffer) => {
      for (const msg of dec.push(d)) {
        const id = field(msg, 'id');
        if (id !== undefined) {
          const p = this.pending.get(id);
          if (p) { clearTimeout(p.timer); this.pending.delete(id); p.resolve(msg); }
        } else if (field(msg, 'ev')) this.emit('event', msg);
      }
    });
    s.on('error', () => {});
    s.on('close', () => {
      this.connected = false;
      this.sock = null;
      if (!this.closed) this.retry = setTimeout(() => this.connectOnce(), 100);
    });
  }

  request(op: string, fields: [string, string][], timeoutMs: number): Promise<GuestRecord[]> {
    if (this.closed) return Promise.reject(new HangarError('VM_STOPPED', 'the VM is not running', { status: 409 }));
    const id = String(this.nextId++);
    const msg = encodeRecords([['id', id], ['op', op], ...fields, ['end', '']]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new HangarError('TIMEOUT', `the guest did not answer "${op}" within ${timeoutMs} ms; the VM may still be booting`, { status: 408 }));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      if (this.connected && this.sock) this.sock.write(msg);
      else this.queue.push(msg);
    });
  }

  /** Fail every outstanding request (the VM is gone) and stop reconnecting. */
  close(reason: Error): void {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.sock?.destroy();
    for (const [, p] of this.pending) { clearTimeout(p.timer); p.reject(reason); }
    this.pending.clear();
    this.queue = [];
  }
}
