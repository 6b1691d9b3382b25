import { closeSync, openSync, readSync, watch, type FSWatcher } from 'node:fs';

/**
 * Follows a file qemu appends to (a chardev file backend): inotify for low
 * latency, a slow poll as a safety net, and an explicit drain() for the
 * final read after qemu exits.
 */
export class FileTail {
  private fd: number | null = null;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private buf = Buffer.alloc(65536);

  constructor(private path: string, public offset: number, private onData: (chunk: Buffer) => void) {}

  start(pollMs = 1000): void {
    this.timer = setInterval(() => this.drain(), pollMs);
    this.drain();
  }

  drain(): void {
    if (this.fd === null) {
      try { this.fd = openSync(this.path, 'r'); } catch { return; }
      try { this.watcher = watch(this.path, () => this.drain()); this.watcher.on('error', () => {}); } catch { /* poll only */ }
    }
    for (;;) {
      let n: number;
      try { n = readSync(this.fd, this.buf, 0, this.buf.length, this.offset); } catch { return; }
      if (n <= 0) return;
      this.offset += n;
      this.onData(Buffer.from(this.buf.subarray(0, n)));
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.watcher?.close();
    this.watcher = null;
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
