import { createHash } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, closeSync, rmSync, writeFileSync, type Stats } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { HangarError } from '../../shared/errors.js';
import { run } from '../../shared/process.js';
import { DockerfileError, expandWord, expandWords, isRemoteSource, UnsupportedFeature, type Dockerfile, type Instruction, type Stage } from './dockerfile.js';
import type { BuildCache, StepRecord } from './cache.js';
import { copyIntoLayer, hashSources, makeDirs, settleTimes, type CopySource, type DirTimes } from './copy.js';
import type { ContainerConfig, HistoryEntry, ImageConfigJson, LayerDescriptor } from './image.js';
import { commandArgv, configChange } from './config-steps.js';
import { imagePath, pathInRoot } from './paths.js';
import { fstabField, Sandbox, type Bind } from './sandbox.js';
import { groupsOf, homeOf, resolveIds, type Ids } from './users.js';

/** A base image in Hangar's registry, flattened once into the cache. */
export interface BaseImage {
  /** Repository holding it (for blob mounts into the app's repository). */
  repo: string;
  /** Manifest digest. */
  digest: string;
  config: ImageConfigJson;
  layers: LayerDescriptor[];
  /** Flattened tree, relative to the cache root. */
  dir: string;
}

export type StateLayer = { kind: 'base'; repo: string; desc: LayerDescriptor; diffId: string } | { kind: 'built'; key: string; record: StepRecord };

/** A stage's image as the build goes: what the next step's cache key and sandbox start from. */
export interface StageState {
  key: string;
  baseDir?: string;
  layers: StateLayer[];
  config: ContainerConfig;
  history: HistoryEntry[];
  args: Map<string, string>;
  cmdSet: boolean;
  /** Time of the newest layer: the image's time, so an all-cached rebuild keeps its digest. */
  created: string;
}

export interface NativeBuildRequest {
  dockerfile: Dockerfile;
  contextDir: string;
  target?: string;
  buildArgs: Record<string, string>;
  secrets: Record<string, string>;
  noCache: boolean;
}

export interface NativeBuildDeps {
  cache: BuildCache;
  sandbox: Sandbox;
  resolveBase: (ref: string, signal?: AbortSignal) => Promise<BaseImage>;
  out: (line: string) => void;
  signal?: AbortSignal;
}

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** BuildKit's automatic platform args, in the global scope. */
const PLATFORM_ARGS: Record<string, string> = {
  TARGETPLATFORM: 'linux/amd64', TARGETOS: 'linux', TARGETARCH: 'amd64', TARGETVARIANT: '',
  BUILDPLATFORM: 'linux/amd64', BUILDOS: 'linux', BUILDARCH: 'amd64', BUILDVARIANT: '',
};
/** Args every build accepts without an ARG line (Docker's predefined proxy args). */
const PREDEFINED = new Set(['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']);

const keyOf = (...parts: unknown[]) => createHash('sha256').update(JSON.stringify(parts)).digest('hex');
const fail = (what: string, why: string) => new HangarError('BUILD_FAILED', `${what}: ${why}`, { status: 422 });

/**
 * Hangar's own Dockerfile builder: cache keys computed in-process, COPY
 * layers written straight from the context, RUN steps in one overlay +
 * chroot exec (sandbox.ts). It declines (UnsupportedFeature) what it does
 * not implement; the caller then builds with buildah.
 */
export class NativeBuild {
  private readonly states = new Map<number, Promise<StageState>>();
  private readonly globals = new Map<string, string>();
  private readonly usedArgs = new Set<string>();
  private readonly views = new Map<string, Promise<string>>();
  private readonly mounted: string[] = [];
  private pendingViews: Array<[string, string[]]> | undefined;
  private pendingMount: Promise<void> | undefined;
  private readonly tmp: string[] = [];
  private readonly holds: Array<() => void> = [];
  private step = 0;
  private total = 0;

  constructor(
    private readonly req: NativeBuildRequest,
    private readonly d: NativeBuildDeps,
  ) {}

  /**
   * Build the target stage (default: the last). The layer and base dirs the
   * result uses stay held against pruning until `release()`.
   */
  async run(): Promise<StageState> {
    const { dockerfile: df, buildArgs } = this.req;
    for (const [k, v] of Object.entries(PLATFORM_ARGS)) this.globals.set(k, v);
    for (const a of df.globalArgs) {
      let v: string | undefined;
      try {
        v = buildArgs[a.name] ?? (a.default !== undefined ? this.expand(a.default, (n) => this.globals.get(n)) : undefined);
      } catch (e) {
        throw badDockerfile(e, `Dockerfile: global ARG ${a.name}`);
      }
      if (a.name in buildArgs) this.usedArgs.add(a.name);
      if (v !== undefined) this.globals.set(a.name, v);
      else this.globals.delete(a.name);
    }
    let target = df.stages.length - 1;
    if (this.req.target !== undefined) {
      target = df.stages.findIndex((s) => s.name === this.req.target!.toLowerCase());
      if (target < 0) throw new HangarError('BUILD_FAILED', `the Dockerfile has no stage named "${this.req.target}"; stages: ${df.stages.map((s) => s.name ?? `#${s.index}`).join(', ')}`, { status: 422 });
    }
    const needed = this.neededStages(target);
    this.total = [...needed].reduce((n, i) => n + df.stages[i]!.instructions.length + 1, 0);
    try {
      // Dependencies first, in file order, so the steps print in the order they are written.
      for (const i of [...needed].sort((a, b) => a - b)) await this.stage(i, []);
      const state = await this.stage(target, []);
      const unused = Object.keys(buildArgs).filter((k) => !this.usedArgs.has(k) && !PREDEFINED.has(k));
      if (unused.length) this.d.out(`[Warning] one or more build args were not consumed: ${unused.join(', ')}`);
      return state;
    } catch (e) {
      this.release();
      await this.cleanup();
      throw e;
    }
  }

  /** Unmount views and remove scratch dirs (after the push: nothing waits for it). */
  async cleanup(): Promise<void> {
    // One umount(8) for all views (each process start costs the daemon a fork); they are not nested.
    const views = this.mounted.splice(0);
    if (views.length) await run('umount', ['--', ...views], { allowFailure: true });
    for (const t of this.tmp.splice(0)) {
      try {
        rmSync(t, { recursive: true, force: true });
      } catch {
        // Still mounted (umount failed): the next daemon start's recovery takes it.
      }
    }
  }

  /** Let the cache prune what this build used (once its image is pushed). */
  release(): void {
    for (const r of this.holds.splice(0)) r();
  }

  private expand(word: string, lookup: (n: string) => string | undefined): string {
    return expandWord(word, lookup, this.req.dockerfile.escape);
  }

  /** Stages the target depends on (FROM and COPY --from by name or index), itself included. */
  private neededStages(target: number): Set<number> {
    const out = new Set<number>();
    const visit = (i: number) => {
      if (out.has(i)) return;
      out.add(i);
      const s = this.req.dockerfile.stages[i]!;
      const refs = [s.from, ...s.instructions.flatMap((x) => (x.kind === 'COPY' || x.kind === 'ADD') && x.from ? [x.from] : [])];
      for (const r of refs) {
        const j = this.stageIndex(r, i);
        if (j !== undefined) visit(j);
      }
    };
    visit(target);
    return out;
  }

  private stageIndex(ref: string, before: number): number | undefined {
    const name = ref.toLowerCase();
    const byName = this.req.dockerfile.stages.findIndex((s, i) => i < before && s.name === name);
    if (byName >= 0) return byName;
    if (/^\d+$/.test(ref) && Number(ref) < before) return Number(ref);
    return undefined;
  }

  private stage(i: number, chain: number[]): Promise<StageState> {
    if (chain.includes(i)) throw new HangarError('BUILD_FAILED', `the Dockerfile's stages depend on each other in a circle (${[...chain, i].join(' → ')})`, { status: 422 });
    let p = this.states.get(i);
    if (!p) {
      p = this.buildStage(this.req.dockerfile.stages[i]!, [...chain, i]);
      this.states.set(i, p);
    }
    return p;
  }

  private say(text: string): string {
    this.step++;
    const line = `STEP ${this.step}/${this.total}: ${text}`;
    this.d.out(line);
    return line;
  }

  private async buildStage(stage: Stage, chain: number[]): Promise<StageState> {
    let from: string;
    try {
      from = this.expand(stage.from, (n) => this.globals.get(n));
    } catch (e) {
      throw badDockerfile(e, `Dockerfile line ${stage.line}`);
    }
    this.say(`FROM ${from}${stage.name ? ` AS ${stage.name}` : ''}`);
    if (stage.platform && this.expand(stage.platform, (n) => this.globals.get(n)) !== 'linux/amd64') {
      throw new UnsupportedFeature(`FROM --platform=${stage.platform} (Hangar runs linux/amd64)`, stage.line);
    }
    let state: StageState;
    const prior = this.stageIndex(from, stage.index);
    if (from.toLowerCase() === 'scratch') {
      state = { key: keyOf('scratch'), layers: [], config: {}, history: [], args: new Map(), cmdSet: false, created: new Date(0).toISOString() };
    } else if (prior !== undefined) {
      const s = await this.stage(prior, chain);
      state = { ...s, layers: [...s.layers], config: structuredClone(s.config), history: [...s.history], args: new Map(), cmdSet: false };
    } else {
      const base = await this.d.resolveBase(from, this.d.signal);
      if (base.config.config?.OnBuild?.length) throw new UnsupportedFeature(`base image ${from} has ONBUILD triggers`, stage.line);
      this.holds.push(this.d.cache.hold([base.dir]));
      const diffIds = base.config.rootfs?.diff_ids ?? [];
      state = {
        key: keyOf('base', base.digest),
        baseDir: base.dir,
        layers: base.layers.map((desc, n) => ({ kind: 'base', repo: base.repo, desc, diffId: diffIds[n]! })),
        config: structuredClone(base.config.config ?? {}),
        history: [...(base.config.history ?? [])],
        args: new Map(),
        cmdSet: false,
        created: base.config.created ?? new Date(0).toISOString(),
      };
    }
    for (const inst of stage.instructions) {
      this.d.signal?.throwIfAborted();
      try {
        state = await this.instruction(state, inst, chain);
      } catch (e) {
        throw badDockerfile(e, `Dockerfile line ${inst.line}`);
      }
    }
    return state;
  }

  /** Variables as an instruction sees them: ENV wins over ARG (Docker). */
  private lookup(s: StageState): (n: string) => string | undefined {
    const env = new Map((s.config.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] as const));
    return (n) => env.get(n) ?? s.args.get(n);
  }

  private configStep(s: StageState, inst: Instruction, change: (c: ContainerConfig) => void, keyPart: unknown): StageState {
    const config = structuredClone(s.config);
    change(config);
    return { ...s, config, key: keyOf(s.key, inst.kind, keyPart), history: [...s.history, { created: s.created, created_by: inst.text, comment: 'hangar', empty_layer: true }] };
  }

  private async instruction(s: StageState, inst: Instruction, chain: number[]): Promise<StageState> {
    const stepLine = this.say(inst.text);
    const look = this.lookup(s);
    const word = (w: string) => this.expand(w, look);
    const where = `Dockerfile line ${inst.line} (${inst.kind})`;
    const config = configChange(inst, s.config, s.cmdSet, { word, words: (w) => expandWords(w, look, this.req.dockerfile.escape) });
    if (config) {
      const next = this.configStep(s, inst, config.change, config.keyPart);
      return inst.kind === 'CMD' ? { ...next, cmdSet: true } : next;
    }
    switch (inst.kind) {
      case 'ARG': {
        const args = new Map(s.args);
        for (const a of inst.args) {
          let v: string | undefined = this.req.buildArgs[a.name];
          if (v !== undefined) this.usedArgs.add(a.name);
          else if (a.default !== undefined) v = this.expand(a.default, (n) => args.get(n) ?? look(n));
          else v = this.globals.get(a.name);
          if (v !== undefined) args.set(a.name, v);
        }
        return { ...this.configStep(s, inst, () => {}, [...args]), args };
      }
      case 'WORKDIR': {
        const dir = imagePath(word(inst.path), s.config.WorkingDir ?? '/').replace(/(.)\/$/, '$1');
        const next = { ...s, config: { ...s.config, WorkingDir: dir } };
        // Docker creates the directory (owned by the current USER, as BuildKit); a layer only if it was missing.
        return this.layerStep(next, inst, keyOf(s.key, 'WORKDIR', dir, s.config.User ?? ''), stepLine, async (layer) => {
          const view = await this.view(s);
          if (existsIn(view, dir)) return;
          const ids = this.ids(view, s.config.User, where);
          const times: DirTimes = [];
          makeDirs(layer, view, dir, { mode: 0o755, uid: ids.uid, gid: ids.gid, mtime: new Date() }, times);
          settleTimes(times);
        });
      }
      case 'COPY':
      case 'ADD':
        return this.copyStep(s, inst, chain, stepLine, where);
      case 'RUN':
        return this.runStep(s, inst, stepLine, where);
      default:
        throw new Error(`unhandled instruction ${inst.kind}`);
    }
  }

  private ids(view: string | undefined, user: string | undefined, where: string): Ids {
    return user ? resolveIds(view, user, where) : { uid: 0, gid: 0 };
  }

  /**
   * A step that may write a layer: a cache hit reuses the layer directory;
   * a miss runs `make` into a new one. Empty results add no layer.
   */
  private async layerStep(s: StageState, inst: Instruction, key: string, stepLine: string, make: (layer: string) => Promise<void>, xattrs = false): Promise<StageState> {
    let record = this.req.noCache ? undefined : this.d.cache.get(key);
    if (record) this.d.out('--> Using cache');
    else {
      const { id, dir } = this.d.cache.newLayer();
      const abs = this.d.cache.abs(dir);
      try {
        await make(abs);
      } catch (e) {
        rmSync(abs, { recursive: true, force: true });
        if (e instanceof HangarError && e.code === 'BUILD_FAILED' && !e.message.startsWith('the build failed at')) {
          throw new HangarError('BUILD_FAILED', `the build failed at ${stepLine}: ${e.message}`, { status: 422 });
        }
        throw e;
      }
      const empty = readdirSync(abs).length === 0;
      if (empty) rmSync(abs, { recursive: true, force: true });
      record = { layer: empty ? null : id, xattrs, bytes: empty ? 0 : treeBytes(abs), created: new Date().toISOString() };
      this.d.cache.put(key, record);
    }
    if (record.layer) this.holds.push(this.d.cache.hold([this.d.cache.layerDir(record.layer)]));
    const created = record.layer && record.created > s.created ? record.created : s.created;
    return {
      ...s,
      key,
      created,
      layers: record.layer ? [...s.layers, { kind: 'built', key, record }] : s.layers,
      history: [...s.history, { created: record.layer ? record.created : s.created, created_by: inst.text, comment: 'hangar', ...(record.layer ? {} : { empty_layer: true }) }],
    };
  }

  /** Overlay lower dirs of a state, topmost first, relative to the cache root. */
  private lowers(s: StageState): string[] {
    const dirs = s.layers.flatMap((l) => (l.kind === 'built' && l.record.layer ? [this.d.cache.layerDir(l.record.layer)] : [])).reverse();
    return s.baseDir ? [...dirs, s.baseDir] : dirs;
  }

  /** A read-only merged view of a state's filesystem (one overlay mount, shared by steps that read the same state). */
  private view(s: StageState): Promise<string> {
    let v = this.views.get(s.key);
    if (!v) {
      const lowers = this.lowers(s);
      if (lowers.length === 1) v = Promise.resolve(this.d.cache.abs(lowers[0]!));
      else {
        const dir = this.d.cache.tmp('v-');
        this.tmp.push(dir);
        // One lower dir is not a valid overlay; two or more are read-only by nature.
        v = lowers.length === 0 ? Promise.resolve(dir) : this.mountView(dir, lowers).then(() => dir);
      }
      this.views.set(s.key, v);
    }
    return v;
  }

  /**
   * Overlay mounts asked for in the same turn of the event loop (COPY --from
   * wants its source and destination views at once) are made by one
   * `mount -a` of an fstab: each process start costs the daemon a fork.
   */
  private mountView(dir: string, lowers: string[]): Promise<void> {
    if (!this.pendingViews) {
      const batch: Array<[string, string[]]> = [];
      this.pendingViews = batch;
      this.pendingMount = Promise.resolve().then(async () => {
        this.pendingViews = undefined;
        const fstab = join(this.d.cache.tmp('fstab-'), 'fstab');
        this.tmp.push(dirname(fstab));
        writeFileSync(fstab, batch.map(([d, l]) => `overlay ${fstabField(d)} overlay ${fstabField(`lowerdir=${l.join(':')}`)} 0 0\n`).join(''));
        // Recorded first: if only some mount, cleanup's umount takes those (and shrugs off the rest).
        this.mounted.push(...batch.map(([d]) => d));
        await run('mount', ['-a', '-T', fstab], { cwd: this.d.cache.root });
      });
    }
    this.pendingViews.push([dir, lowers]);
    return this.pendingMount!;
  }

  private async copyStep(s: StageState, inst: Extract<Instruction, { kind: 'COPY' | 'ADD' }>, chain: number[], stepLine: string, where: string): Promise<StageState> {
    const look = this.lookup(s);
    const word = (w: string) => this.expand(w, look);
    const patterns = inst.sources.map(word);
    const remote = patterns.find(isRemoteSource);
    if (remote && inst.kind === 'ADD') throw new UnsupportedFeature(`ADD from a URL or git repository (${remote})`, inst.line);
    const rawDest = word(inst.dest);
    const dest = imagePath(rawDest, s.config.WorkingDir ?? '/');
    const chown = inst.chown !== undefined ? word(inst.chown) : undefined;
    let chmod: number | undefined;
    if (inst.chmod !== undefined) {
      const m = word(inst.chmod);
      if (!/^[0-7]{3,4}$/.test(m)) throw fail(where, `--chmod=${m} must be an octal mode such as 0755 or 644`);
      chmod = parseInt(m, 8);
    }
    let source: () => Promise<CopySource>;
    let sourceKey: string;
    if (inst.from !== undefined) {
      const from = word(inst.from);
      const j = this.stageIndex(from, Infinity);
      if (j !== undefined && !chain.includes(j)) {
        const other = await this.stage(j, chain);
        sourceKey = `stage:${other.key}`;
        source = async () => ({ root: await this.view(other), patterns, keepOwners: true });
      } else {
        const base = await this.d.resolveBase(from, this.d.signal);
        this.holds.push(this.d.cache.hold([base.dir]));
        sourceKey = `image:${base.digest}`;
        source = async () => ({ root: this.d.cache.abs(base.dir), patterns, keepOwners: true });
      }
    } else {
      const ctx = this.req.contextDir;
      sourceKey = `context:${hashSources(ctx, patterns, where)}`;
      source = async () => ({ root: ctx, patterns, keepOwners: false });
    }
    const key = keyOf(s.key, inst.kind, patterns, dest, chown, chmod, sourceKey);
    return this.layerStep(s, inst, key, stepLine, async (layer) => {
      // Both views may be overlay mounts: make them at the same time.
      const [destRoot, from] = await Promise.all([this.lowers(s).length ? this.view(s) : undefined, source()]);
      copyIntoLayer({
        what: where,
        source: from,
        dest,
        destRoot,
        layer,
        ...(chown !== undefined ? { chown: resolveIds(destRoot, chown, `${where} --chown`) } : {}),
        ...(chmod !== undefined ? { chmod } : {}),
        note: this.d.out,
        check: inst.kind === 'ADD' && inst.from === undefined ? (p, st) => refuseArchive(p, st, inst.line) : undefined,
      });
    });
  }

  private async runStep(s: StageState, inst: Extract<Instruction, { kind: 'RUN' }>, stepLine: string, where: string): Promise<StageState> {
    const argv = commandArgv(s.config, inst.command);
    const env = [...(s.config.Env ?? [])];
    const names = new Set(env.map((e) => e.slice(0, e.indexOf('='))));
    for (const [k, v] of s.args) if (!names.has(k)) env.push(`${k}=${v}`);
    if (!names.has('PATH')) env.unshift(DEFAULT_PATH);
    const workdir = s.config.WorkingDir || '/';
    const user = s.config.User ?? '';
    for (const m of inst.secrets) {
      if (m.required && !(m.id in this.req.secrets)) throw fail(where, `the build secret "${m.id}" is required: pass it with --build-secret ${m.id}=VALUE`);
    }
    const secretIds = inst.secrets.map((m) => [m.id, m.target, m.mode, m.uid, m.gid, m.env ?? null]);
    const key = keyOf(s.key, 'RUN', argv, env, user, workdir, secretIds);
    return this.layerStep(s, inst, key, stepLine, async (upper) => {
      const view = user ? await this.view(s) : undefined;
      const ids = this.ids(view, user, where);
      if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${homeOf(view, ids.uid)}`);
      const scratch = this.d.cache.tmp('r-');
      this.tmp.push(scratch);
      const work = join(scratch, 'work');
      const merged = join(scratch, 'merged');
      const files = join(scratch, 'files');
      const points = join(scratch, 'points');
      for (const d of [work, merged, files, points]) mkdirSync(d, { mode: 0o700 });
      const binds: Bind[] = [
        { source: Sandbox.privateCopy('/etc/resolv.conf', join(files, 'resolv.conf')), target: '/etc/resolv.conf' },
        { source: Sandbox.privateCopy('/etc/hosts', join(files, 'hosts')), target: '/etc/hosts' },
      ];
      for (const [n, m] of inst.secrets.entries()) {
        const value = this.req.secrets[m.id];
        if (value === undefined) continue;
        if (m.env) env.push(`${m.env}=${value}`);
        if (!m.target) continue;
        const f = join(files, `secret-${n}`);
        writeFileSync(f, value, { mode: 0o600 });
        chownSync(f, m.uid, m.gid);
        chmodSync(f, m.mode);
        binds.push({ source: f, target: posix.resolve('/', m.target) });
      }
      Sandbox.mountPoints(points, binds.slice(2));
      await this.d.sandbox.prepare();
      const tail: string[] = [];
      const code = await this.d.sandbox.run({
        lowers: [...this.lowers(s), relative(this.d.cache.root, points), 'skeleton'],
        upper: relative(this.d.cache.root, upper),
        work: relative(this.d.cache.root, work),
        merged,
        cwd: this.d.cache.root,
        binds,
        env,
        uid: ids.uid,
        gid: ids.gid,
        groups: user ? groupsOf(view, ids) : [ids.gid],
        workdir,
        argv,
        onLine: (l) => {
          tail.push(l);
          if (tail.length > 30) tail.shift();
          this.d.out(l);
        },
        signal: this.d.signal,
      });
      // The overlay's work dir holds root-only leftovers; it goes with the scratch dir.
      if (code !== 0) {
        throw new HangarError(
          'BUILD_FAILED',
          `the build failed at ${stepLine} (exit code ${code}); nothing was deployed and running machines are unchanged. Last output:\n${tail.slice(-12).join('\n')}`,
          { status: 422 },
        );
      }
    }, true);
  }
}

/** A Dockerfile error as the user's 400; expansion errors know no line, so `where` says it. Anything else passes through. */
function badDockerfile(e: unknown, where: string): unknown {
  return e instanceof DockerfileError ? new HangarError('BAD_DOCKERFILE', e.line ? e.message : `${where}: ${e.message}`, { status: 400 }) : e;
}

/** ADD extracts local archives; the native builder leaves that to buildah. */
function refuseArchive(path: string, st: Stats, line: number): void {
  if (!st.isFile() || st.size < 6) return;
  const head = Buffer.alloc(512);
  const fd = openSync(path, 'r');
  let n: number;
  try {
    n = readSync(fd, head, 0, 512, 0);
  } finally {
    closeSync(fd);
  }
  const b = head.subarray(0, n);
  const archive =
    (b[0] === 0x1f && b[1] === 0x8b) ||
    b.subarray(0, 3).toString('latin1') === 'BZh' ||
    b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) ||
    b.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])) ||
    (n >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar');
  if (archive) throw new UnsupportedFeature('ADD of a local archive (it is extracted into the image)', line);
}

function existsIn(view: string, p: string): boolean {
  try {
    return lstatSync(pathInRoot(view, p)).isDirectory();
  } catch {
    return false;
  }
}

function treeBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += lstatSync(p).size;
    if (e.isDirectory()) n += treeBytes(p);
  }
  return n;
}
