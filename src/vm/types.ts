import type { EventEmitter } from 'node:events';

/** The image's own config (OCI image config `config` section). */
export interface ImageRunConfig {
  entrypoint?: string[] | null;
  cmd?: string[] | null;
  /** "KEY=value" entries, as in the OCI config */
  env?: string[] | null;
  user?: string | null;
  workingDir?: string | null;
}

/** A file the init writes into the guest before the app starts (Fly `files`). */
export interface GuestFile {
  guestPath: string;
  /** base64 content (Fly's raw_value) */
  rawValue: string;
  /** permission bits, default 0o644 */
  mode?: number;
}

/**
 * Everything that decides what runs in the guest. The host compiles it into
 * the guest wire format (see compileRunConfig): command per Fly's rules,
 * environment merged image → machine env → secrets (later wins).
 */
export interface RunConfig {
  image: ImageRunConfig;
  /** Fly `init`: exec replaces everything; entrypoint/cmd override the image's. */
  init?: { exec?: string[] | null; entrypoint?: string[] | null; cmd?: string[] | null };
  env?: Record<string, string>;
  secrets?: Record<string, string>;
  /** overrides the image USER: "name", "uid", "user:group", "uid:gid" */
  user?: string;
  /** overrides the image WorkingDir */
  workingDir?: string;
  hostname?: string;
  files?: GuestFile[];
  /** extra /etc/hosts lines, "ip name..." */
  hosts?: string[];
  /** default: qemu user networking's 10.0.2.3 */
  nameservers?: string[];
  /** verbose init messages on the console */
  debug?: boolean;
}

export interface PortForward {
  guestPort: number;
  protocol?: 'tcp' | 'udp';
}

export interface ForwardedPort {
  guestPort: number;
  protocol: 'tcp' | 'udp';
  hostAddress: string;
  hostPort: number;
}

/** A persistent disk image attached to the VM and mounted by the init. */
export interface VolumeAttachment {
  /** host path of a raw ext4 image */
  hostPath: string;
  /** mount point in the guest (absolute, not /) */
  guestPath: string;
}

export interface VmSpec {
  /** machine id; names the qemu process and the disks' serials */
  id: string;
  /** per-VM directory owned by the driver (created if missing, must be private to this VM) */
  stateDir: string;
  /** read-only root filesystem image (EROFS) */
  rootfs: string;
  rootfsType?: 'erofs' | 'ext4';
  run: RunConfig;
  cpus?: number;
  memoryMb?: number;
  ports?: PortForward[];
  volumes?: VolumeAttachment[];
  /** size of the per-boot writable layer (sparse), default 2048 */
  scratchMb?: number;
  /** extra kernel command-line arguments */
  kernelArgs?: string[];
  /** how long qemu may take to come up (not the guest boot), default 15000 */
  startTimeoutMs?: number;
  /** kill the VM (reason "crashed") if the init has not started the app by then; default 300000 (TCG on a busy host is slow) */
  bootTimeoutMs?: number;
  /**
   * Opt-in safety net for tests: the init kills the app (and so stops the VM)
   * when no host has been connected to its control channel for this long.
   * Default: $HANGAR_VM_ORPHAN_TIMEOUT_S × 1000, else off. Leave it off in
   * production (a daemon restart must not stop machines).
   */
  orphanTimeoutMs?: number;
}

export type LogStream = 'stdout' | 'stderr' | 'init';

export interface LogLine {
  stream: LogStream;
  line: string;
  /** host time the line was read, ms since epoch */
  ts: number;
  /** byte offset just past this record in the VM's log file (for resuming after adoption) */
  offset: number;
}

export interface ConsoleLine {
  line: string;
  ts: number;
}

export type ExitReason =
  /** the app exited (exitCode/signal are the app's) */
  | 'exited'
  /** the init refused to start the app: `error` names why, exitCode is 200-210 */
  | 'init_error'
  /** the host killed the VM (kill()/dispose()) */
  | 'killed'
  /** qemu or the guest kernel died without an exit report */
  | 'crashed';

export interface VmExit {
  exitCode: number | null;
  /** signal number that killed the app, if any */
  signal: number | null;
  oomKilled: boolean;
  reason: ExitReason;
  /** init error name (e.g. "unknown_user"), when reason is init_error */
  error?: string;
  /** human-readable summary: the init's last message or the console tail */
  message: string;
  exitedAt: number;
}

export interface ExecResult {
  exitCode: number;
  signal: number | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

export interface VmStatus {
  /** booting: qemu runs but the app has not started; running: the app runs;
   * exiting: the app exited and the VM is powering off; stopped: qemu is gone */
  state: 'booting' | 'running' | 'exiting' | 'stopped';
  pid: number | null;
  appPid?: number;
  uptimeMs?: number;
}

export interface VmHandleEvents {
  log: [LogLine];
  console: [ConsoleLine];
  /** the init started the app */
  started: [{ appPid: number }];
  exit: [VmExit];
}

export interface VmHandle extends EventEmitter<VmHandleEvents> {
  readonly id: string;
  readonly stateDir: string;
  /** qemu's pid */
  readonly pid: number;
  readonly ports: ForwardedPort[];
  readonly accel: Accel;
  /** ms since epoch: startVm called, qemu spawned, qemu ready (QMP up); 0 when adopted */
  readonly timings: { requestedAt: number; spawnedAt: number; readyAt: number };
  /** the last lines of the serial console (kernel and init messages) */
  consoleTail(): string[];
  /** resolves when the init has started the app; rejects if the VM stops first */
  waitStarted(): Promise<{ appPid: number }>;
  exec(cmd: string[], options?: { timeoutMs?: number }): Promise<ExecResult>;
  /** deliver a signal to the app (name like "SIGTERM" or a number) */
  signal(sig: string | number): Promise<void>;
  status(): Promise<VmStatus>;
  waitExit(): Promise<VmExit>;
  /** SIGKILL qemu; resolves with the exit */
  kill(): Promise<VmExit>;
  /** kill (if running), wait, release watchers and sockets */
  dispose(): Promise<void>;
  /** release watchers and sockets but leave the VM running (daemon shutdown) */
  detach(): void;
  /**
   * Grow an attached volume while the VM runs: qemu learns the new size of
   * the image at hostPath (already grown on the host), then the guest grows
   * its mounted ext4. Resolves with the filesystem's new size.
   */
  growVolume(hostPath: string, bytes: number): Promise<{ fsBytes: number }>;
  /**
   * Hold the volume at hostPath still for a copy: its filesystem frozen in
   * the guest (or, failing that, the VM paused). Call release() when done;
   * the guest thaws by itself after holdMs or if this host goes away.
   */
  holdVolume(hostPath: string, holdMs?: number): Promise<VolumeHold>;
}

/** See VmHandle.holdVolume. */
export interface VolumeHold {
  /** freeze: the guest's ext4 is frozen (clean on disk); pause: the whole VM is stopped (crash-consistent) */
  mode: 'freeze' | 'pause';
  /** consistent: false when the hold ended early (a copy made meanwhile may be torn) */
  release(): Promise<{ consistent: boolean }>;
}

export type Accel = 'kvm' | 'tcg';

/** A hypervisor backend. qemu microvm is the first; firecracker etc. would be others. */
export interface VmDriver {
  readonly name: string;
  start(spec: VmSpec): Promise<VmHandle>;
  /** reattach to a VM started by a previous daemon process */
  adopt(stateDir: string, options?: AdoptOptions): Promise<VmHandle>;
}

export interface AdoptOptions {
  /** resume the log stream at this byte offset (LogLine.offset of the last stored line) */
  logOffset?: number;
}
