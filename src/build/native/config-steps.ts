import { HangarError } from '../../shared/errors.js';
import type { CommandForm, Instruction } from './dockerfile.js';
import type { ContainerConfig } from './image.js';

/** What a config-only instruction does: its change to the image config, and what its cache key depends on. */
export interface ConfigChange {
  change: (c: ContainerConfig) => void;
  keyPart: unknown;
}

export interface Expanders {
  /** Docker's expansion of one word against the stage's ENV and ARG values. */
  word: (w: string) => string;
  /** The same for a word that may become several (EXPOSE). */
  words: (w: string) => string[];
}

const DEFAULT_SHELL = ['/bin/sh', '-c'];

/** A CMD/ENTRYPOINT/RUN command as argv: the exec form as written, the shell form through SHELL. */
export function commandArgv(config: ContainerConfig, c: CommandForm): string[] {
  return c.form === 'exec' ? c.argv : [...(config.Shell ?? DEFAULT_SHELL), c.script];
}

/**
 * The config change of an instruction that writes no files (ENV, LABEL,
 * EXPOSE, USER, CMD, ENTRYPOINT, SHELL, STOPSIGNAL, VOLUME, HEALTHCHECK,
 * ONBUILD), as Docker applies it; undefined for the others. `cmdSet`: a CMD
 * came earlier in this stage (an ENTRYPOINT then keeps it).
 */
export function configChange(inst: Instruction, config: ContainerConfig, cmdSet: boolean, x: Expanders): ConfigChange | undefined {
  const where = `Dockerfile line ${inst.line} (${inst.kind})`;
  switch (inst.kind) {
    case 'ENV': {
      const pairs = inst.pairs.map(([k, v]) => [x.word(k), x.word(v)] as const);
      return {
        keyPart: pairs,
        change: (c) => {
          const env = [...(c.Env ?? [])];
          for (const [k, v] of pairs) {
            const i = env.findIndex((e) => e.slice(0, e.indexOf('=')) === k);
            if (i >= 0) env[i] = `${k}=${v}`;
            else env.push(`${k}=${v}`);
          }
          c.Env = env;
        },
      };
    }
    case 'LABEL': {
      const pairs = inst.pairs.map(([k, v]) => [x.word(k), x.word(v)] as const);
      return { keyPart: pairs, change: (c) => (c.Labels = { ...(c.Labels ?? {}), ...Object.fromEntries(pairs) }) };
    }
    case 'EXPOSE': {
      const ports = inst.ports.flatMap(x.words).flatMap((p) => exposedPorts(p, where));
      return { keyPart: ports, change: (c) => (c.ExposedPorts = { ...(c.ExposedPorts ?? {}), ...Object.fromEntries(ports.map((p) => [p, {}])) }) };
    }
    case 'USER': {
      const user = x.word(inst.user);
      return { keyPart: user, change: (c) => (c.User = user) };
    }
    case 'CMD': {
      const argv = commandArgv(config, inst.command);
      return { keyPart: argv, change: (c) => (c.Cmd = argv) };
    }
    case 'ENTRYPOINT': {
      const argv = commandArgv(config, inst.command);
      return {
        keyPart: argv,
        change: (c) => {
          c.Entrypoint = argv;
          // Docker: an ENTRYPOINT drops a CMD inherited from the base, not one set in this stage.
          if (!cmdSet) c.Cmd = null;
        },
      };
    }
    case 'SHELL':
      return { keyPart: inst.argv, change: (c) => (c.Shell = inst.argv) };
    case 'STOPSIGNAL': {
      const sig = x.word(inst.signal);
      return { keyPart: sig, change: (c) => (c.StopSignal = sig) };
    }
    case 'VOLUME': {
      const paths = inst.paths.map(x.word);
      return { keyPart: paths, change: (c) => (c.Volumes = { ...(c.Volumes ?? {}), ...Object.fromEntries(paths.map((p) => [p, {}])) }) };
    }
    case 'HEALTHCHECK': {
      const hc = inst.none
        ? { Test: ['NONE'] }
        : {
            Test: inst.command.form === 'exec' ? ['CMD', ...inst.command.argv] : ['CMD-SHELL', inst.command.script],
            ...(inst.intervalNs !== undefined ? { Interval: inst.intervalNs } : {}),
            ...(inst.timeoutNs !== undefined ? { Timeout: inst.timeoutNs } : {}),
            ...(inst.startPeriodNs !== undefined ? { StartPeriod: inst.startPeriodNs } : {}),
            ...(inst.startIntervalNs !== undefined ? { StartInterval: inst.startIntervalNs } : {}),
            ...(inst.retries !== undefined ? { Retries: inst.retries } : {}),
          };
      return { keyPart: hc, change: (c) => (c.Healthcheck = hc) };
    }
    case 'ONBUILD':
      return { keyPart: inst.trigger, change: (c) => (c.OnBuild = [...(c.OnBuild ?? []), inst.trigger]) };
    default:
      return undefined;
  }
}

/** EXPOSE 80, 80/tcp, 53/udp, 8000-8002 → "80/tcp" ... (Docker expands ranges). */
function exposedPorts(spec: string, where: string): string[] {
  const fail = (why: string) => new HangarError('BUILD_FAILED', `${where}: ${why}`, { status: 422 });
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(spec);
  if (!m) throw fail(`"${spec}" is not a port: write PORT, PORT/tcp, PORT/udp or FROM-TO`);
  const lo = Number(m[1]);
  const hi = m[2] ? Number(m[2]) : lo;
  if (lo < 1 || hi > 65535 || hi < lo || hi - lo > 1000) throw fail(`port range "${spec}" is invalid`);
  const proto = (m[3] ?? 'tcp').toLowerCase();
  return Array.from({ length: hi - lo + 1 }, (_, i) => `${lo + i}/${proto}`);
}
