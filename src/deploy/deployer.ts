import type { Accounts, App } from '../accounts/index.js';
import type { MachineManager, MachineRecord, MachineConfig } from '../machines/index.js';
import type { LogStore } from '../logs/index.js';
import type { Logger } from '../shared/log.js';
import { HangarError } from '../shared/errors.js';
import { durationToMs } from '../machines/config.js';
import { appConfigSchema, checksOf, machineConfigFor, processGroups, shellSplit, DEFAULT_GROUP, type AppConfig, type Strategy } from '../appconfig/index.js';
import { parseInput } from '../shared/validate.js';
import { Releases, type Release } from './releases.js';
import { runCheck } from './checks.js';
import { resolveDeployImage, type DeployImageStore } from './images.js';

export interface DeployerOptions {
  releases: Releases;
  machines: MachineManager;
  logs?: LogStore;
  accounts: Accounts;
  /** The registry: its store, and its Docker Hub pull-through when configured. */
  images: DeployImageStore;
  registryHosts: () => string[];
  log: Logger;
}

export interface DeployRequest {
  app: App;
  /** Who deploys (token name), for the release record. */
  user: string;
  image: string;
  config: unknown;
  strategy?: Strategy;
  waitTimeoutMs?: number;
  description?: string;
  skipReleaseCommand?: boolean;
}

export type DeployEvent = (line: string) => void;

const DEFAULT_WAIT_MS = 5 * 60_000;
const RELEASE_ROLE = 'release_command';

export const groupOf = (m: MachineRecord): string => m.config.metadata?.fly_process_group ?? DEFAULT_GROUP;
const isAppMachine = (m: MachineRecord) => !m.config.metadata?.hangar_role && m.state !== 'destroyed';

/**
 * Releases and rollouts: resolve the image, record a release, run the
 * release_command, then move every process group's machines to the new
 * config with the chosen strategy. One deploy per app at a time.
 */
export class Deployer {
  private readonly busy = new Set<string>();

  constructor(private readonly o: DeployerOptions) {
    const n = o.releases.failInterrupted();
    if (n) o.log.warn('marked releases interrupted by a daemon stop as failed', { count: n });
  }

  get releases(): Releases {
    return this.o.releases;
  }

  appMachines(app: string): MachineRecord[] {
    return this.o.machines.list(app).filter(isAppMachine);
  }

  /**
   * Validate and record the release (returned through `onRelease` at once,
   * for --detach), then roll it out. Resolves with the finished release.
   */
  async deploy(req: DeployRequest, out: DeployEvent, onRelease?: (r: Release) => void): Promise<Release> {
    const app = req.app;
    const config = parseInput(appConfigSchema, req.config, 'app config');
    const resolved = await resolveDeployImage({ ref: req.image, app, accounts: this.o.accounts, images: this.o.images, registryHosts: this.o.registryHosts() });
    const strategy: Strategy = req.strategy ?? config.deploy?.strategy ?? 'rolling';
    if (this.busy.has(app.name)) throw new HangarError('CONFLICT', `a deploy of ${app.name} is already running; wait for it (hangar status) and try again`);
    this.busy.add(app.name);
    let release: Release;
    try {
      release = this.o.releases.create(app.id, app.name, {
        image: resolved.image,
        image_digest: resolved.digest,
        strategy,
        description: req.description ?? `Deploy image ${resolved.image.split('@')[0]!.split('/').pop()}`,
        user: req.user,
        config,
      });
    } catch (e) {
      this.busy.delete(app.name);
      throw e;
    }
    onRelease?.(release);
    out(`release v${release.version}: ${resolved.image}${resolved.digest ? ` (${resolved.digest.slice(0, 19)})` : ''}, strategy ${strategy}`);
    try {
      const waitMs = req.waitTimeoutMs ?? durationToMs(config.deploy?.wait_timeout, DEFAULT_WAIT_MS);
      const build = (group: string) => machineConfigFor(config, group, { image: resolved.ref, releaseId: release.id, releaseVersion: release.version });
      if (config.deploy?.release_command && !req.skipReleaseCommand) await this.releaseCommand(app.name, config, build, out);
      await this.rollout(app.name, config, build, strategy, waitMs, out);
      this.o.releases.finish(release.id, 'complete');
      out(`release v${release.version} is live`);
      return { ...this.o.releases.get(app.id, release.version)! };
    } catch (err) {
      const reason = err instanceof HangarError ? err.message : `internal error: ${(err as Error).message}`;
      this.o.releases.finish(release.id, 'failed', reason);
      if (!(err instanceof HangarError)) this.o.log.error('deploy failed', { app: app.name, err });
      throw err instanceof HangarError ? err : new HangarError('DEPLOY_FAILED', reason, { status: 500 });
    } finally {
      this.busy.delete(app.name);
    }
  }

  /** Runs release_command once in a temporary machine; a non-zero exit aborts the deploy before any machine changes. */
  private async releaseCommand(app: string, config: AppConfig, build: (g: string) => MachineConfig, out: DeployEvent): Promise<void> {
    const command = config.deploy!.release_command!;
    const base = build(processGroups(config)[0]!);
    const mc: MachineConfig = {
      ...base,
      env: { ...base.env, RELEASE_COMMAND: '1' },
      init: { ...(base.init ?? {}), cmd: shellSplit(command), exec: undefined },
      services: undefined,
      checks: undefined,
      mounts: undefined,
      restart: { policy: 'no' },
      auto_destroy: true,
      metadata: { ...base.metadata, hangar_role: RELEASE_ROLE },
    };
    out(`running release_command: ${command}`);
    const m = await this.o.machines.create(app, { config: mc, skip_launch: true });
    const unsubscribe = this.o.logs?.subscribe({ app, machineId: m.id }, (l) => out(`  release_command | ${l.message}`));
    try {
      await this.o.machines.start(app, m.id).catch(() => undefined);
      const timeoutMs = durationToMs(config.deploy?.release_command_timeout, 5 * 60_000);
      const deadline = Date.now() + timeoutMs;
      let cur = this.o.machines.get(app, m.id);
      while (!['destroyed', 'stopped', 'failed'].includes(cur.state)) {
        if (Date.now() > deadline) {
          await this.o.machines.destroy(app, m.id, true).catch(() => undefined);
          throw new HangarError('RELEASE_COMMAND_FAILED', `release_command did not finish within ${timeoutMs / 1000}s; the deploy was aborted and the previous release keeps serving`, { status: 422 });
        }
        await sleep(200);
        cur = this.o.machines.get(app, m.id);
      }
      const exit = [...this.o.machines.events(app, m.id)].reverse().find((e) => e.type === 'exit');
      const ev = exit?.request as { exit_event?: { exit_code?: number }; reason?: string } | undefined;
      const code = ev?.exit_event?.exit_code ?? (cur.state === 'failed' ? -1 : 0);
      if (cur.state === 'failed' || code !== 0) {
        const why = cur.state === 'failed' ? `could not start: ${cur.reason ?? ev?.reason ?? 'unknown reason'}` : `exited with code ${code}`;
        throw new HangarError('RELEASE_COMMAND_FAILED', `release_command "${command}" ${why}; the deploy was aborted and the previous release keeps serving (see its output above or hangar logs)`, {
          status: 422,
        });
      }
      out('release_command finished (exit code 0)');
    } finally {
      unsubscribe?.();
      const left = this.o.machines.list(app, true).find((x) => x.id === m.id);
      if (left && left.state !== 'destroyed') await this.o.machines.destroy(app, m.id, true).catch(() => undefined);
    }
  }

  private async rollout(app: string, config: AppConfig, build: (g: string) => MachineConfig, strategy: Strategy, waitMs: number, out: DeployEvent): Promise<void> {
    const groups = processGroups(config);
    const existing = this.appMachines(app);
    for (const group of groups) {
      const mc = build(group);
      const machines = existing.filter((m) => groupOf(m) === group);
      if (!machines.length) {
        out(`[${group}] creating 1 machine`);
        const m = await this.createAndWait(app, mc, waitMs, out, group);
        out(`[${group}] machine ${m.id} is ${checksOf(mc).length ? 'healthy' : 'started'}`);
        continue;
      }
      if (strategy === 'immediate') await this.immediate(app, machines, mc, out, group);
      else if (strategy === 'bluegreen') await this.bluegreen(app, machines, mc, waitMs, out, group);
      else {
        if (strategy === 'canary') await this.canary(app, mc, waitMs, out, group);
        await this.rolling(app, machines, mc, config, waitMs, out, group);
      }
    }
    // Machines of process groups no longer in the config.
    for (const m of existing.filter((x) => !groups.includes(groupOf(x)))) {
      out(`[${groupOf(m)}] process group removed from the config: destroying machine ${m.id}`);
      await this.o.machines.destroy(app, m.id, true);
    }
  }

  private async immediate(app: string, machines: MachineRecord[], mc: MachineConfig, out: DeployEvent, group: string): Promise<void> {
    out(`[${group}] updating ${machines.length} machine(s) at once (immediate: no health checks)`);
    const results = await Promise.allSettled(machines.map((m) => this.updateAndStart(app, m.id, mc)));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`${machines[i]!.id}: ${(r.reason as Error).message}`] : []));
    if (failed.length) throw new HangarError('DEPLOY_FAILED', `[${group}] ${failed.length} machine(s) failed to update: ${failed.join('; ')}`, { status: 422 });
  }

  private async rolling(app: string, machines: MachineRecord[], mc: MachineConfig, config: AppConfig, waitMs: number, out: DeployEvent, group: string): Promise<void> {
    const mu = config.deploy?.max_unavailable ?? 0.33;
    const batch = Math.max(1, mu >= 1 ? Math.floor(mu) : Math.ceil(machines.length * mu));
    let done = 0;
    for (let i = 0; i < machines.length; i += batch) {
      const slice = machines.slice(i, i + batch);
      out(`[${group}] updating ${slice.map((m) => m.id).join(', ')} (${done + slice.length}/${machines.length}, max_unavailable ${batch})`);
      try {
        await Promise.all(
          slice.map(async (m) => {
            const since = new Date().toISOString();
            await this.updateAndStart(app, m.id, mc);
            await this.waitHealthy(app, m.id, mc, waitMs, out, group, since);
          }),
        );
      } catch (err) {
        const untouched = machines.length - done - slice.length;
        throw new HangarError(
          'DEPLOY_FAILED',
          `${(err as Error).message}. The rollout stopped: ${done} machine(s) run the new release, ${untouched} still run the previous one. Fix the app and deploy again, or roll back with \`hangar releases rollback\``,
          { status: 422 },
        );
      }
      done += slice.length;
    }
  }

  private async canary(app: string, mc: MachineConfig, waitMs: number, out: DeployEvent, group: string): Promise<void> {
    out(`[${group}] booting a canary machine`);
    const canary: MachineConfig = { ...mc, metadata: { ...mc.metadata, hangar_role: 'canary' } };
    let id: string | undefined;
    try {
      const m = await this.o.machines.create(app, { config: canary });
      id = m.id;
      await this.waitHealthy(app, m.id, canary, waitMs, out, group);
      out(`[${group}] canary ${m.id} passed; continuing with a rolling update`);
    } catch (err) {
      throw new HangarError('DEPLOY_FAILED', `[${group}] the canary failed: ${(err as Error).message}; no existing machine was changed`, { status: 422 });
    } finally {
      if (id) await this.o.machines.destroy(app, id, true).catch(() => undefined);
    }
  }

  private async bluegreen(app: string, blue: MachineRecord[], mc: MachineConfig, waitMs: number, out: DeployEvent, group: string): Promise<void> {
    if (!checksOf(mc).length) out(`[${group}] warning: bluegreen without health checks only waits for the green machines to start`);
    out(`[${group}] booting ${blue.length} green machine(s) next to the blue ones`);
    const green: string[] = [];
    try {
      await Promise.all(
        blue.map(async () => {
          const m = await this.o.machines.create(app, { config: mc });
          green.push(m.id);
          await this.waitHealthy(app, m.id, mc, waitMs, out, group);
        }),
      );
    } catch (err) {
      for (const id of green) await this.o.machines.destroy(app, id, true).catch(() => undefined);
      throw new HangarError('DEPLOY_FAILED', `[${group}] a green machine failed: ${(err as Error).message}; green machines were removed and the blue ones keep serving`, { status: 422 });
    }
    out(`[${group}] green is healthy; removing ${blue.length} blue machine(s)`);
    for (const m of blue) await this.o.machines.destroy(app, m.id, true).catch(() => undefined);
  }

  /** Update a machine's config; a deploy also starts machines that were stopped (e.g. crashed ones). */
  private async updateAndStart(app: string, id: string, mc: MachineConfig): Promise<void> {
    const m = await this.o.machines.update(app, id, { config: mc });
    if (m.state === 'stopped' || m.state === 'failed' || m.state === 'created') await this.o.machines.start(app, id);
  }

  async createAndWait(app: string, mc: MachineConfig, waitMs: number, out: DeployEvent, group: string): Promise<MachineRecord> {
    const since = new Date().toISOString();
    const m = await this.o.machines.create(app, { config: mc });
    await this.waitHealthy(app, m.id, mc, waitMs, out, group, since);
    return this.o.machines.get(app, m.id);
  }

  /**
   * Started, and (when the config has checks) passing every check against
   * the machine's forwarded host ports. Fails fast when the machine stops.
   */
  async waitHealthy(app: string, id: string, mc: MachineConfig, waitMs: number, out: DeployEvent, group: string, since = new Date(Date.now() - 1000).toISOString()): Promise<void> {
    const deadline = Date.now() + waitMs;
    const checks = checksOf(mc);
    let startedAt: number | undefined;
    let lastFailure = '';
    for (;;) {
      const m = this.o.machines.get(app, id);
      if (m.state === 'started') {
        if (startedAt === undefined) {
          // The VM runs before its init and network are up; an exec returns
          // once init is, so port checks below see the guest, not just the
          // host end of the port forward.
          if (checks.length) await this.o.machines.exec(app, id, ['true'], Math.max(1000, deadline - Date.now())).catch(() => undefined);
          startedAt = Date.now();
        }
      } else if (['stopped', 'failed', 'destroyed'].includes(m.state) || (startedAt !== undefined && m.state !== 'starting')) {
        const logs = this.o.logs?.query({ app, machineId: id, limit: 1000 }).filter((l) => l.timestamp >= since).slice(-8).map((l) => `    ${l.message}`).join('\n');
        throw new HangarError('MACHINE_FAILED', `[${group}] machine ${id} is ${m.state}${m.reason ? ` (${m.reason})` : ''}${logs ? `; last output:\n${logs}` : ''}`, { status: 422 });
      }
      if (startedAt !== undefined) {
        if (!checks.length) return;
        const results = await Promise.all(
          checks.map(async (c) => {
            if (Date.now() - startedAt! < c.gracePeriodMs) return `${c.name}: in its grace period`;
            const hostPort = m.ports[String(c.port)];
            if (!hostPort) return `${c.name}: port ${c.port} is not forwarded (is it a service's internal_port?)`;
            const why = await runCheck(c, hostPort);
            return why ? `${c.name} (${c.type} on port ${c.port}): ${why}` : undefined;
          }),
        );
        const failing = results.filter(Boolean) as string[];
        if (!failing.length) {
          out(`[${group}] machine ${id} passed ${checks.length} health check(s)`);
          return;
        }
        lastFailure = failing.join('; ');
      }
      if (Date.now() > deadline) {
        const logs = this.o.logs?.query({ app, machineId: id, limit: 1000 }).filter((l) => l.timestamp >= since).slice(-6).map((l) => `    ${l.message}`).join('\n');
        throw new HangarError(
          'HEALTH_CHECK_FAILED',
          `[${group}] machine ${id} ${startedAt === undefined ? 'did not start' : 'did not pass its health checks'} within ${Math.round(waitMs / 1000)}s${lastFailure ? `: ${lastFailure}` : ''}${logs ? `\n  last output of the machine:\n${logs}\n` : ''}`,
          { status: 422 },
        );
      }
      await sleep(checks.length ? 500 : 200);
    }
  }

  /** `hangar scale count`: create or destroy machines of a group, from the current release. */
  async scale(app: App, group: string, count: number, out: DeployEvent): Promise<MachineRecord[]> {
    const current = this.o.releases.current(app.id);
    if (!current) throw new HangarError('NO_RELEASE', `${app.name} has no successful release yet; run \`hangar deploy\` first`, { status: 412 });
    if (!processGroups(current.config).includes(group)) {
      throw new HangarError('BAD_REQUEST', `process group "${group}" is not in the current release; groups: ${processGroups(current.config).join(', ')}`);
    }
    // New machines run exactly the release's image: its digest, not whatever its tag points at now.
    const ref = current.image_digest ? `${current.image.split('@')[0]}@${current.image_digest}` : current.image;
    const resolved = await resolveDeployImage({ ref, app, accounts: this.o.accounts, images: this.o.images, registryHosts: this.o.registryHosts() });
    const mc = machineConfigFor(current.config, group, { image: resolved.ref, releaseId: current.id, releaseVersion: current.version });
    const machines = this.appMachines(app.name).filter((m) => groupOf(m) === group);
    if (count > machines.length) {
      out(`[${group}] creating ${count - machines.length} machine(s)`);
      const waitMs = durationToMs(current.config.deploy?.wait_timeout, DEFAULT_WAIT_MS);
      for (let i = machines.length; i < count; i++) {
        const m = await this.createAndWait(app.name, mc, waitMs, out, group);
        out(`[${group}] machine ${m.id} is ${checksOf(mc).length ? 'healthy' : 'started'}`);
      }
    } else if (count < machines.length) {
      // Newest first, stopped ones before running ones.
      const victims = [...machines].sort((a, b) => Number(a.state === 'started') - Number(b.state === 'started') || b.created_at.localeCompare(a.created_at)).slice(0, machines.length - count);
      for (const m of victims) {
        out(`[${group}] destroying ${m.id}`);
        await this.o.machines.destroy(app.name, m.id, true);
      }
    }
    return this.appMachines(app.name).filter((m) => groupOf(m) === group);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
