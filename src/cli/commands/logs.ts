import type { Command } from '../command.js';
import { appOption, resolveApp } from '../app-flag.js';

interface Line { timestamp: string; machine_id: string; stream: string; message: string }

export const logCommands: Command[] = [
  {
    path: ['logs'],
    summary: "Show an app's logs, following new lines (--no-tail: print and exit)",
    usage: 'logs -a APP [--machine ID] [--no-tail] [--json]',
    options: { ...appOption, machine: { type: 'string', short: 'i' }, 'no-tail': { type: 'boolean', short: 'n' }, limit: { type: 'string' } },
    async run(ctx) {
      const app = resolveApp(ctx.flags);
      const q = new URLSearchParams();
      if (ctx.flags.machine) q.set('machine_id', String(ctx.flags.machine));
      q.set('limit', String(ctx.flags.limit ?? 100));
      const print = (l: Line) => {
        if (ctx.out.json) ctx.out.line(JSON.stringify(l));
        else ctx.out.line(`${l.timestamp} app[${l.machine_id}] ${l.stream === 'stderr' ? '[err] ' : l.stream === 'system' ? '[hangar] ' : ''}${l.message}`);
      };
      const api = ctx.api();
      if (ctx.flags['no-tail']) {
        for (const l of await api.request<Line[]>('GET', `/v1/apps/${encodeURIComponent(app)}/logs?${q}`)) print(l);
        return;
      }
      q.set('follow', 'true');
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      const res = await api.raw('GET', `/v1/apps/${encodeURIComponent(app)}/logs?${q}`, undefined, { signal: controller.signal });
      let buf = '';
      try {
        for await (const chunk of res.body) {
          buf += chunk.toString('utf8');
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const text = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (text.trim()) print(JSON.parse(text) as Line);
          }
        }
      } catch (err) {
        if (!controller.signal.aborted) throw err;
      }
    },
  },
];
