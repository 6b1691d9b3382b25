import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';

const CHUNK = 1 << 20;
const IN_FLIGHT = 4;
const POOL_MAX = 16;
const pool: Buffer[] = [];

/**
 * Stream bytes [start, end] of a file to a response through a small pool of
 * reused 1 MiB buffers. A plain read stream allocates a fresh buffer per
 * read; in the daemon (a real heap) the garbage collection that causes cost
 * more CPU than the copying itself. A buffer returns to the pool only once
 * the socket has taken its bytes (the write callback).
 */
export async function sendFileRange(fh: FileHandle, res: ServerResponse, start: number, end: number): Promise<void> {
  let failed = false;
  let inflight = 0;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onClose = () => {
    if (!res.writableFinished) failed = true;
    notify();
  };
  res.once('close', onClose);
  try {
    let pos = start;
    while (pos <= end) {
      while (inflight >= IN_FLIGHT && !failed) await new Promise<void>((r) => (wake = r));
      if (failed) return;
      const buf = pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
      const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, end - pos + 1), pos);
      if (bytesRead === 0) throw new Error(`blob file is shorter than its recorded size (at byte ${pos})`);
      if (failed) return;
      pos += bytesRead;
      inflight++;
      res.write(buf.subarray(0, bytesRead), (err) => {
        inflight--;
        if (err) failed = true;
        else if (pool.length < POOL_MAX) pool.push(buf);
        notify();
      });
    }
    while (inflight > 0 && !failed) await new Promise<void>((r) => (wake = r));
    if (!failed) res.end();
  } finally {
    res.off('close', onClose);
    await fh.close();
  }
}
