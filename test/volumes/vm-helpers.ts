import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/shared/process.js';
import { writeBusyboxImage, type BusyboxImageOptions } from '../fixtures/busybox-image.js';
import type { TestDaemon } from '../helpers/daemon.js';

/** Push the busybox fixture into the daemon's own registry as <app>/busybox:<tag>. */
export async function pushBusybox(t: TestDaemon, app: string, tag: string, options: BusyboxImageOptions = {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-img-'));
  try {
    writeBusyboxImage(join(dir, 'layout'), { ...options, tag });
    const host = t.daemon.url.replace(/^http:\/\//, '');
    await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', `hangar:${t.adminToken}`, `oci:${join(dir, 'layout')}:${tag}`, `docker://${host}/${app}/busybox:${tag}`], {
      env: { ...process.env, HOME: dir, XDG_RUNTIME_DIR: dir },
      timeoutMs: 120_000,
    });
    return `${app}/busybox:${tag}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** POST a machine and wait until it is started; fails with the API's error otherwise. */
export async function startMachine(t: TestDaemon, app: string, body: unknown): Promise<{ id: string; status: number; body: any }> {
  const r = await t.api('POST', `/v1/apps/${app}/machines`, body);
  if (r.status !== 200) return { id: '', status: r.status, body: r.body };
  const w = await t.api('GET', `/v1/apps/${app}/machines/${r.body.id}/wait?state=started&timeout=120`);
  if (w.status !== 200) throw new Error(`machine ${r.body.id} did not start: ${JSON.stringify(w.body)} ${JSON.stringify((await t.api('GET', `/v1/apps/${app}/machines/${r.body.id}`)).body)}`);
  return { id: r.body.id, status: r.status, body: r.body };
}

/** Run a shell command in a started machine, retrying while the guest's exec channel comes up. */
export async function sh(t: TestDaemon, app: string, id: string, cmd: string): Promise<{ exit_code: number; stdout: string; stderr: string }> {
  let last: any;
  for (let i = 0; i < 60; i++) {
    const r = await t.api('POST', `/v1/apps/${app}/machines/${id}/exec`, { command: ['/bin/sh', '-c', cmd], timeout: 60 });
    if (r.status === 200) return r.body;
    last = r.body;
    await new Promise((res) => setTimeout(res, 500));
  }
  const m = (await t.api('GET', `/v1/apps/${app}/machines/${id}`)).body;
  const logs = (await t.api('GET', `/v1/apps/${app}/logs?machine_id=${id}&limit=20`)).body;
  throw new Error(`exec in ${id} failed: ${JSON.stringify(last)}; machine ${m?.state} (${m?.reason ?? ''}); last log lines: ${JSON.stringify(Array.isArray(logs) ? logs.map((l: { message: string }) => l.message) : logs)}`);
}

export async function waitState(t: TestDaemon, app: string, id: string, state: string): Promise<void> {
  const w = await t.api('GET', `/v1/apps/${app}/machines/${id}/wait?state=${state}&timeout=120`);
  if (w.status !== 200) throw new Error(`machine ${id} did not reach ${state}: ${JSON.stringify(w.body)}`);
}
