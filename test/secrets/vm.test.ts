import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createLogger } from '../../src/shared/log.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { pushBusybox, sh, runMachine, waitState } from '../helpers/machines.js';
import { filesContaining } from './helpers.js';

const APP = 'sekrit';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

test('secrets in a real guest: env (secret wins over [env]), files[], restart on set, --stage + deploy, redacted logs, no value anywhere on disk', { timeout: 600_000 }, async () => {
  const daemonLog: string[] = [];
  const t = await startTestDaemon({ logger: createLogger((l) => daemonLog.push(l)) });
  const tag = randomBytes(8).toString('hex');
  const pw1 = `pw1-${tag}`;
  const pw2 = `pw2-${tag}`;
  const pw3 = `pw3-${tag}`;
  const greet = `greet-${tag}`;
  const responses: unknown[] = [];
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await t.api(method, path, body);
    responses.push(r.body);
    return r;
  };
  // The guest prints digests of its environment, never the values.
  const envDigest = (id: string) =>
    sh(t, APP, id, `P=$(pidof sleep); tr '\\0' '\\n' < /proc/$P/environ | grep -E '^(DB_PASSWORD|GREETING|PLAIN)=' | sort | sha256sum | cut -d' ' -f1`).then((r) => r.stdout.trim());
  const expect = (env: Record<string, string>) => sha(Object.keys(env).sort().map((k) => `${k}=${env[k]}\n`).join(''));
  try {
    await api('POST', '/v1/apps', { app_name: APP });
    const image = await pushBusybox(t, `${APP}/busybox`, 'v1');
    assert.equal((await api('POST', `/v1/apps/${APP}/secrets`, { values: { DB_PASSWORD: pw1, GREETING: greet, PW_FILE: Buffer.from(pw1).toString('base64') } })).status, 200);

    const m = await runMachine(t, APP, {
      config: {
        image,
        env: { GREETING: 'from-env', PLAIN: 'plain-value' },
        init: { cmd: ['/bin/sh', '-c', 'echo "password is $DB_PASSWORD"; sleep 100000'] },
        restart: { policy: 'no' },
        files: [
          // As on Fly, a secret used as a file holds the file's content in base64.
          { guest_path: '/etc/app/pw', secret_name: 'PW_FILE', mode: 0o600 },
          { guest_path: '/etc/app/raw.txt', raw_value: Buffer.from('raw file\n').toString('base64') },
        ],
      },
    });
    responses.push((await api('GET', `/v1/apps/${APP}/machines/${m}`)).body);
    assert.equal(await envDigest(m), expect({ DB_PASSWORD: pw1, GREETING: greet, PLAIN: 'plain-value' }), 'secrets are env; a secret wins over [env]');
    const files = await sh(t, APP, m, 'sha256sum /etc/app/pw | cut -d" " -f1; stat -c %a /etc/app/pw; cat /etc/app/raw.txt');
    assert.equal(files.stdout, `${sha(pw1)}\n600\nraw file\n`);

    // The app printed its password: the log API shows it redacted.
    let printed: string | undefined;
    for (let i = 0; i < 60 && !printed; i++) {
      printed = (await api('GET', `/v1/apps/${APP}/logs?machine_id=${m}`)).body.map((l: { message: string }) => l.message).find((x: string) => x.startsWith('password is'));
      if (!printed) await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(printed, 'password is [REDACTED]');

    // set (not staged) restarts the started machine with the new value.
    const set = await api('POST', `/v1/apps/${APP}/secrets`, { values: { DB_PASSWORD: pw2 } });
    assert.deepEqual(set.body.restarted, [m]);
    await waitState(t, APP, m, 'started');
    assert.equal(await envDigest(m), expect({ DB_PASSWORD: pw2, GREETING: greet, PLAIN: 'plain-value' }));

    // --stage: nothing restarts, the running app keeps the old value; deploy rolls it out.
    const events = (await api('GET', `/v1/apps/${APP}/machines/${m}/events`)).body.length;
    const staged = await api('POST', `/v1/apps/${APP}/secrets?stage=true`, { values: { DB_PASSWORD: pw3, GREETING: null } });
    assert.equal(staged.body.staged, true);
    assert.deepEqual(staged.body.restarted, []);
    assert.equal(staged.body.secrets.find((s: { name: string }) => s.name === 'DB_PASSWORD').status, 'staged');
    assert.equal((await api('GET', `/v1/apps/${APP}/machines/${m}/events`)).body.length, events);
    assert.equal(await envDigest(m), expect({ DB_PASSWORD: pw2, GREETING: greet, PLAIN: 'plain-value' }));
    const deploy = await api('POST', `/v1/apps/${APP}/secrets`, { values: {} });
    assert.deepEqual(deploy.body.restarted, [m]);
    await waitState(t, APP, m, 'started');
    assert.equal(await envDigest(m), expect({ DB_PASSWORD: pw3, GREETING: 'from-env', PLAIN: 'plain-value' }), 'unset: the [env] value is back');
    assert.equal((await api('GET', `/v1/apps/${APP}/secrets`)).body.secrets.every((s: { status: string }) => s.status === 'deployed'), true);

    // No value in any response, the daemon log, or any file of the data dir
    // (database, app logs, machine state, rootfs cache, registry layers).
    await api('GET', `/v1/apps/${APP}/machines/${m}`);
    await api('GET', `/v1/apps/${APP}/logs?limit=1000`);
    const all = JSON.stringify(responses) + daemonLog.join('\n');
    for (const v of [pw1, pw2, pw3, greet]) assert.equal(all.includes(v), false, `a response or the daemon log has ${v.slice(0, 4)}`);
    // The raw virtio log file of a live machine still holds what the app
    // printed (see docs/secrets.md, "Known gap"); destroying the machine
    // removes it, so the search below runs over everything that remains.
    assert.equal((await api('DELETE', `/v1/apps/${APP}/machines/${m}?force=true`)).status, 200);
    await waitState(t, APP, m, 'destroyed');
    t.daemon.logs.flush();
    t.daemon.store.db.pragma('wal_checkpoint(TRUNCATE)');
    for (const v of [pw1, pw2, pw3, greet]) assert.deepEqual(filesContaining(t.dataDir, v), [], `files holding ${v.slice(0, 4)}`);
  } finally {
    for (const mm of t.daemon.machines.list(APP)) await t.daemon.machines.destroy(APP, mm.id, true).catch(() => {});
    await t.close();
  }
});
