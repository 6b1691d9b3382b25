/**
 * What the machine lifecycle needs from the rest of Hangar, as two small
 * interfaces: something that turns an image reference into a bootable root
 * filesystem, and something that boots and supervises guests. The daemon
 * wires the real rootfs cache and VM driver in (see wiring.ts); the lifecycle
 * logic in manager.ts never touches qemu or tar files directly.
 */
import type { ImageRef } from './records.js';

/** The parts of the OCI image config the guest init needs. */
export interface ImageRunConfig {
  entrypoint?: string[] | null;
  cmd?: string[] | null;
  env?: string[] | null;
  workingDir?: string;
  user?: string;
  stopSignal?: string;
  exposedPorts?: string[];
}

export interface AcquiredImage {
  /** Read-only root filesystem image (EROFS). */
  imagePath: string;
  ref: ImageRef;
  config: ImageRunConfig;
  /** Let the cache evict it again once the machine stops. */
  release(): void;
}

export interface ImageProvider {
  acquire(image: string, ctx: { app: string }): Promise<AcquiredImage>;
}

export interface GuestFile {
  path: string;
  /** base64 */
  content: string;
  mode: number;
}

export interface GuestMount {
  /** Host path of the volume's block image. */
  imagePath: string;
  guestPath: string;
  volumeId: string;
}

export interface BootSpec {
  machineId: string;
  /** Per-machine directory for sockets, pid file, scratch disk. */
  stateDir: string;
  hostname: string;
  rootfsPath: string;
  image: ImageRunConfig;
  /** Machine config env (already merged: image env is applied by init). */
  env: Record<string, string>;
  secrets: Record<string, string>;
  init: { exec?: string[]; entrypoint?: string[]; cmd?: string[] };
  cpus: number;
  memoryMb: number;
  /** Guest TCP ports to forward to 127.0.0.1:<ephemeral>. */
  ports: number[];
  files: GuestFile[];
  mounts: GuestMount[];
}

export interface GuestExit {
  exitCode: number;
  oomKilled: boolean;
  /** Signal name when the app was killed by one. */
  signal?: string;
  /** Why, for humans: "app exited", "init: user not found", "qemu crashed". */
  reason: string;
}

export interface ExecResult {
  exit_code: number;
  stdout: string;
  stderr: string;
}

export interface RunningGuest {
  /** Guest port (as string) → host port on 127.0.0.1. */
  ports: Record<string, number>;
  /**
   * App output lines; `system` carries init/kernel messages worth showing.
   * `cursor` is the source position after the line, stored with it so a
   * re-adopted guest resumes exactly there.
   */
  onOutput(cb: (stream: 'stdout' | 'stderr' | 'system', line: string, cursor?: number) => void): void;
  exec(argv: string[], timeoutMs: number): Promise<ExecResult>;
  signal(signal: string): Promise<void>;
  /** Hard stop: kill the VM. */
  kill(): Promise<void>;
  /** Resolves once, when the VM is gone. */
  exited: Promise<GuestExit>;
  /** Stop watching the guest but leave it running (daemon shutdown). */
  detach(): void;
  /** Grow a mounted volume online (its image file is already `bytes` long). */
  growVolume?(imagePath: string, bytes: number): Promise<void>;
  /**
   * Hold a mounted volume still so its image can be copied; resolves to the
   * release, which rejects when the hold did not last (a copy may be torn).
   */
  holdVolume?(imagePath: string, holdMs: number): Promise<() => Promise<void>>;
}

export interface GuestRunner {
  boot(spec: BootSpec): Promise<RunningGuest>;
  /** Reconnect to a guest left running by an earlier daemon, if it still runs. */
  adopt(machineId: string, stateDir: string, resumeCursor?: number): Promise<RunningGuest | undefined>;
}
