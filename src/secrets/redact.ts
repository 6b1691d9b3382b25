import { LogStore, type LogStream } from '../logs/index.js';
import type { Store } from '../store/index.js';
import type { Secrets } from './secrets.js';

/**
 * The app log store with secret values masked before a line is stored, so
 * an app that prints its credentials does not leak them into the database
 * or the logs API. Use it wherever the daemon would construct a LogStore.
 */
export class RedactingLogStore extends LogStore {
  constructor(
    store: Store,
    private readonly secrets: Pick<Secrets, 'redact'>,
    retainPerMachine?: number,
  ) {
    super(store, retainPerMachine);
  }

  override append(app: string, machineId: string, stream: LogStream, message: string, at?: Date, cursor?: number): void {
    super.append(app, machineId, stream, this.secrets.redact(app, message), at, cursor);
  }
}
