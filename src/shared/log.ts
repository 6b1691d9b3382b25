/**
 * The daemon's own log: one line per event, logfmt-ish on a TTY and JSON
 * otherwise, on stderr. Never pass secrets in `fields`.
 */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

function render(level: string, msg: string, fields: Record<string, unknown> = {}): string {
  const out: Record<string, unknown> = { ts: new Date().toISOString(), level, msg };
  for (const [k, v] of Object.entries(fields)) {
    out[k] = v instanceof Error ? { message: v.message, stack: v.stack } : v;
  }
  return JSON.stringify(out);
}

export function createLogger(write: (line: string) => void = (l) => process.stderr.write(l + '\n')): Logger {
  const quiet = process.env.HANGAR_LOG_LEVEL === 'error';
  return {
    info: (m, f) => { if (!quiet) write(render('info', m, f)); },
    warn: (m, f) => { if (!quiet) write(render('warn', m, f)); },
    error: (m, f) => write(render('error', m, f)),
  };
}
