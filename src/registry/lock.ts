/**
 * A shared/exclusive lock inside the daemon process. Blob commits and
 * manifest writes take it shared; gc's sweep takes it exclusively, so a blob
 * is never unlinked while a commit that would reference it is half done.
 */
export class RwLock {
  private readers = 0;
  private writer = false;
  private writersWaiting = 0;
  private waiters: Array<() => void> = [];

  private wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async shared<T>(fn: () => Promise<T> | T): Promise<T> {
    while (this.writer || this.writersWaiting > 0) await this.wait();
    this.readers++;
    try {
      return await fn();
    } finally {
      this.readers--;
      this.wake();
    }
  }

  async exclusive<T>(fn: () => Promise<T> | T): Promise<T> {
    this.writersWaiting++;
    while (this.writer || this.readers > 0) await this.wait();
    this.writersWaiting--;
    this.writer = true;
    try {
      return await fn();
    } finally {
      this.writer = false;
      this.wake();
    }
  }
}
