import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/shared/process.js';
import { writeBusyboxImage, type BusyboxImageOptions } from '../fixtures/busybox-image.js';
import type { TestDaemon } from './daemon.js';

/** Push the busybox fixture into the daemon's registry with skopeo, as <repo>:<tag>. */
export async function pushBusybox(t: TestDaemon, repo: string, tag: string, options: BusyboxImageOptions = {}, token = t.adminToken): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-img-'));
  try {
    writeBusyboxImage(join(dir, 'layout'), { ...options, tag });
    const host = t.daemon.url.replace(/^http:\/\//, '');
    await run(
      'skopeo',
      ['copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', `hangar:${token}`, `oci:${join(dir, 'layout')}:${tag}`, `docker://${host}/${repo}:${tag}`],
      { env: { ...process.env, HOME: dir, XDG_RUNTIME_DIR: dir }, timeoutMs: 120_000 },
    );
    return `${repo}:${tag}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function waitState(t: TestDaemon, app: string, id: string, state: string, timeoutS = 120): Promise<void> {
  const w = await t.api('GET', `/v1/apps/${app}/machines/${id}/wait?state=${state}&timeout=${timeoutS}`);
  if (w.status !== 200) {
    const m = await t.api('GET', `/v1/apps/${app}/machines/${id}`);
    throw new Error(`machine ${id} did not reach ${state}: ${JSON.stringify(w.body)}; now ${JSON.stringify(m.body?.state)} ${m.body?.reason ?? ''}`);
  }
}

/** Create a machine and wait until it is started. */
export async function runMachine(t: TestDaemon, app: string, body: unknown): Promise<string> {
  const r = await t.api('POST', `/v1/apps/${app}/machines`, body);
  if (r.status !== 200) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}`);
  await waitState(t, app, r.body.id, 'started');
  return r.body.id as string;
}

/** Run a shell command in a started machine, retrying while the guest's exec channel comes up. */
export async function sh(t: TestDaemon, app: string, id: string, cmd: string): Promise<{ exit_code: number; stdout: string; stderr: string }> {
  let last: unknown;
  for (let i = 0; i < 60; i++) {
    const r = await t.api('POST', `/v1/apps/${app}/machines/${id}/exec`, { command: ['/bin/sh', '-c', cmd], timeout: 60 });
    if (r.status === 200) return r.body;
    last = r.body;
    if (r.status !== 409 && r.status !== 408 && r.status !== 503) break;
    await new Promise((res) => setTimeout(res, 500));
  }
  const m = (await t.api('GET', `/v1/apps/${app}/machines/${id}`)).body;
  throw new Error(`exec in ${id} failed: ${JSON.stringify(last)}; machine ${m?.state} (${m?.reason ?? ''}); last log lines: ${JSON.stringify((await logsOf(t, app, id)).slice(-20).map((l) => l.message))}`);
}

/** Poll the app's logs until `pred` matches a line (or time out). */
export async function waitForLog(t: TestDaemon, app: string, pred: (l: { message: string; stream: string; machine_id: string }) => boolean, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await t.api('GET', `/v1/apps/${app}/logs?limit=1000`);
    const hit = (r.body as Array<{ message: string; stream: string; machine_id: string }>).find(pred);
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`no matching log line within ${timeoutMs} ms; have: ${JSON.stringify(r.body).slice(-2000)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

export async function logsOf(t: TestDaemon, app: string, machineId?: string) {
  const r = await t.api('GET', `/v1/apps/${app}/logs?limit=1000${machineId ? `&machine_id=${machineId}` : ''}`);
  return r.body as Array<{ message: string; stream: string; machine_id: string; timestamp: string }>;
}
