import type { MachineManager } from '../machines/index.js';
import { describeError } from '../shared/errors.js';
import type { RestartOutcome } from './secrets.js';

/**
 * The restart a secrets change triggers: every started machine of the app,
 * one after another (a rolling restart), so they boot with the new values.
 * Failures are collected, not thrown: the secrets are already saved.
 */
export function restartStartedMachines(machines: Pick<MachineManager, 'list' | 'restart'>): (app: string) => Promise<RestartOutcome> {
  return async (app) => {
    const out: RestartOutcome = { restarted: [], failed: [] };
    for (const m of machines.list(app)) {
      if (m.state !== 'started' && m.state !== 'starting') continue;
      try {
        await machines.restart(app, m.id);
        out.restarted.push(m.id);
      } catch (err) {
        out.failed.push({ id: m.id, error: describeError(err) });
      }
    }
    return out;
  };
}
