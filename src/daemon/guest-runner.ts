import { constants as osConstants } from 'node:os';
import type { BootSpec, GuestExit, GuestRunner, RunningGuest } from '../machines/index.js';
import { HangarError } from '../shared/errors.js';
import type { VmDriver, VmExit, VmHandle } from '../vm/index.js';

function signalName(n: number | null): string | undefined {
  if (!n) return undefined;
  return Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0];
}

function toGuestExit(e: VmExit): GuestExit {
  const signal = signalName(e.signal);
  const exitCode = e.exitCode ?? (e.signal ? 128 + e.signal : -1);
  let reason: string;
  switch (e.reason) {
    case 'exited':
      reason = signal ? `app was killed by ${signal}` : `app exited with code ${exitCode}`;
      break;
    case 'init_error':
      reason = `init refused to start the app: ${e.message}`;
      break;
    case 'killed':
      reason = 'machine was killed';
      break;
    default:
      reason = `VM crashed: ${e.message}`;
  }
  return { exitCode, oomKilled: e.oomKilled, ...(signal ? { signal } : {}), reason };
}

/**
 * Adapts the VM driver (vm/) to what the machine lifecycle needs. Log lines
 * carry their byte offset in the VM's log file as the cursor, which the log
 * store commits with them; adoption resumes from it.
 */
export function createGuestRunner(driver: VmDriver): GuestRunner {
  function wrap(h: VmHandle): RunningGuest {
    const ports: Record<string, number> = {};
    for (const p of h.ports) if (p.protocol === 'tcp') ports[String(p.guestPort)] = p.hostPort;
    return {
      ports,
      onOutput(cb) {
        h.on('log', (l) => cb(l.stream === 'init' ? 'system' : l.stream, l.line, l.offset));
      },
      async exec(argv, timeoutMs) {
        // A machine is "started" as soon as its VM runs; commands can only
        // reach it once the init is up, so wait for that (bounded).
        await Promise.race([
          h.waitStarted(),
          new Promise((_, reject) => setTimeout(() => reject(new HangarError('TIMEOUT', 'the machine did not finish booting in time; try again', { status: 408 })), timeoutMs).unref()),
        ]);
        const r = await h.exec(argv, { timeoutMs });
        return {
          exit_code: r.exitCode,
          stdout: r.stdout,
          stderr: r.timedOut ? r.stderr + `\n[command timed out after ${timeoutMs / 1000}s]` : r.stderr,
          ...(r.signal ? { exit_signal: signalName(r.signal) } : {}),
        };
      },
      signal: (sig) => h.signal(sig),
      async kill() {
        await h.kill();
      },
      detach: () => h.detach(),
      exited: h.waitExit().then(toGuestExit),
      async growVolume(imagePath, bytes) {
        await h.growVolume(imagePath, bytes);
      },
      async holdVolume(imagePath, holdMs) {
        const hold = await h.holdVolume(imagePath, holdMs);
        return async () => {
          const { consistent } = await hold.release();
          if (!consistent) {
            throw new HangarError('VOLUME_HOLD_LOST', 'the guest thawed the volume before the copy was complete (it was held too long, or the connection to the guest dropped); try again', { status: 409 });
          }
        };
      },
    };
  }

  return {
    async boot(spec: BootSpec): Promise<RunningGuest> {
      const h = await driver.start({
        id: spec.machineId,
        stateDir: spec.stateDir,
        rootfs: spec.rootfsPath,
        run: {
          image: {
            entrypoint: spec.image.entrypoint ?? null,
            cmd: spec.image.cmd ?? null,
            env: spec.image.env ?? null,
            user: spec.image.user || null,
            workingDir: spec.image.workingDir || null,
          },
          init: spec.init,
          env: spec.env,
          secrets: spec.secrets,
          hostname: spec.hostname,
          files: spec.files.map((f) => ({ guestPath: f.path, rawValue: f.content, mode: f.mode })),
        },
        cpus: spec.cpus,
        memoryMb: spec.memoryMb,
        ports: spec.ports.map((guestPort) => ({ guestPort, protocol: 'tcp' as const })),
        volumes: spec.mounts.map((m) => ({ hostPath: m.imagePath, guestPath: m.guestPath })),
      });
      return wrap(h);
    },
    async adopt(_machineId: string, stateDir: string, resumeCursor?: number): Promise<RunningGuest | undefined> {
      try {
        return wrap(await driver.adopt(stateDir, { logOffset: resumeCursor }));
      } catch {
        return undefined;
      }
    },
  };
}
