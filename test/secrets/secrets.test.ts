import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, chmodSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openStore } from '../../src/store/index.js';
import { createLogger } from '../../src/shared/log.js';
import { Secrets, SecretKey, RedactingLogStore, MAX_VALUE_BYTES, REDACTED } from '../../src/secrets/index.js';
import { HangarError } from '../../src/shared/errors.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { filesContaining, runCli } from './helpers.js';

const quiet = createLogger(() => {});

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'hangar-secrets-'));
}

test('key file is created 0600; sealing binds app and name; tampering is detected', () => {
  const dir = tmp();
  try {
    const key = SecretKey.load(dir, true)!;
    assert.equal(statSync(SecretKey.path(dir)).mode & 0o777, 0o600);
    const sealed = key.seal('hunter2-value', 'a\0B');
    assert.equal(sealed.includes(Buffer.from('hunter2-value')), false);
    assert.equal(key.open(sealed, 'a\0B'), 'hunter2-value');
    assert.throws(() => key.open(sealed, 'a\0C'), (e: HangarError) => e.code === 'SECRET_CORRUPT');
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 20] ^= 1;
    assert.throws(() => key.open(flipped, 'a\0B'), (e: HangarError) => e.code === 'SECRET_CORRUPT');
    // Same key from disk opens what the first instance sealed; digests are stable.
    const again = SecretKey.load(dir, false)!;
    assert.equal(again.open(sealed, 'a\0B'), 'hunter2-value');
    assert.equal(again.digest('x'), key.digest('x'));
    assert.notEqual(key.digest('x'), key.digest('y'));
    // A key readable by others is refused.
    chmodSync(SecretKey.path(dir), 0o644);
    assert.throws(() => SecretKey.load(dir, false), (e: HangarError) => e.code === 'INSECURE_KEY_FILE');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('set/unset are all-or-nothing; bad names and oversized values change nothing and do not echo values', async () => {
  const dir = tmp();
  const store = openStore(dir);
  try {
    const restarts: string[] = [];
    const s = new Secrets({ store, dataDir: dir, log: quiet, restartApp: async (app) => (restarts.push(app), { restarted: ['m1'], failed: [] }) });
    const r = await s.update('web', { DATABASE_URL: 'postgres://u:p@db/x', API_KEY: 'k-123456' });
    assert.deepEqual(r.restarted, ['m1']);
    assert.deepEqual(restarts, ['web']);
    assert.deepEqual(s.list('web').secrets.map((x) => [x.name, x.status]), [['API_KEY', 'deployed'], ['DATABASE_URL', 'deployed']]);
    assert.deepEqual(s.valuesFor('web'), { API_KEY: 'k-123456', DATABASE_URL: 'postgres://u:p@db/x' });
    assert.deepEqual(s.valuesFor('other'), {});

    const before = JSON.stringify(s.list('web'));
    const big = 'Z'.repeat(MAX_VALUE_BYTES + 1);
    const bad: Array<[Record<string, string | null>, RegExp]> = [
      [{ GOOD: 'x', '1BAD': 'y' }, /not a valid environment variable name/],
      [{ 'HAS-DASH': 'y' }, /not a valid environment variable name/],
      [{ 'A B': 'y' }, /not a valid environment variable name/],
      [{ '': 'y' }, /not a valid environment variable name/],
      [{ OK: 'fine', HUGE: big }, /larger than the 64 KiB limit/],
      [{ NUL: 'a\0b' }, /NUL/],
    ];
    for (const [change, msg] of bad) {
      await assert.rejects(s.update('web', change), (e: HangarError) => {
        assert.equal(e.status, 400);
        assert.match(e.message, msg);
        assert.equal(e.message.includes('ZZZZ'), false);
        assert.equal(JSON.stringify(e.detail ?? '').includes('ZZZZ'), false);
        return true;
      });
    }
    assert.equal(JSON.stringify(s.list('web')), before, 'a rejected change left no trace');
    assert.equal(restarts.length, 1, 'a rejected change restarted nothing');

    // Exactly at the limit is accepted.
    await s.update('web', { EDGE: 'e'.repeat(MAX_VALUE_BYTES) });
    // Too many bytes in total (1 MiB) is refused as a whole.
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`BULK_${i}`, 'b'.repeat(MAX_VALUE_BYTES)]));
    await assert.rejects(s.update('web', many), /limit is 1048576/);
    assert.equal(s.list('web').secrets.some((x) => x.name.startsWith('BULK_')), false);

    await s.update('web', { API_KEY: null });
    assert.equal(s.valuesFor('web').API_KEY, undefined);

    // A name that is also a JavaScript prototype key stays an ordinary secret.
    await s.update('web', { ['__proto__']: 'proto-value' });
    assert.equal(Object.getOwnPropertyDescriptor(s.valuesFor('web'), '__proto__')?.value, 'proto-value');
    assert.ok(s.list('web').secrets.some((x) => x.name === '__proto__'));
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--stage defers the restart; deploy rolls it out; digests follow values', async () => {
  const dir = tmp();
  const store = openStore(dir);
  try {
    let restarts = 0;
    const s = new Secrets({ store, dataDir: dir, log: quiet, restartApp: async () => (restarts++, { restarted: [], failed: [] }) });
    const a = await s.update('web', { TOKEN: 'first-value' }, { stage: true });
    assert.equal(a.staged, true);
    assert.equal(restarts, 0);
    assert.equal(s.get('web', 'TOKEN').status, 'staged');
    const d1 = s.get('web', 'TOKEN').digest;
    assert.match(d1, /^[0-9a-f]{16}$/);

    await s.deploy('web');
    assert.equal(restarts, 1);
    assert.equal(s.get('web', 'TOKEN').status, 'deployed');

    await s.update('web', { TOKEN: 'second-value' }, { stage: true });
    assert.notEqual(s.get('web', 'TOKEN').digest, d1);
    await s.update('web', { TOKEN: 'first-value' }, { stage: true });
    assert.equal(s.get('web', 'TOKEN').digest, d1, 'same value, same digest');

    // A failed restart leaves the change staged, so `deploy` can retry it.
    const failing = new Secrets({ store, dataDir: dir, log: quiet, restartApp: async () => ({ restarted: [], failed: [{ id: 'm9', error: 'boom' }] }) });
    const r = await failing.deploy('web');
    assert.equal(r.failed.length, 1);
    assert.equal(failing.get('web', 'TOKEN').status, 'staged');
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing key with sealed secrets is a clear error, not silent loss', async () => {
  const dir = tmp();
  let store = openStore(dir);
  try {
    const s = new Secrets({ store, dataDir: dir, log: quiet });
    await s.update('web', { A: 'alpha-value' });
    store.close();
    renameSync(SecretKey.path(dir), SecretKey.path(dir) + '.bak');
    store = openStore(dir);
    const lost = new Secrets({ store, dataDir: dir, log: quiet });
    assert.throws(() => lost.valuesFor('web'), (e: HangarError) => e.code === 'SECRETS_KEY_MISSING' && /restore it from a backup/.test(e.message));
    await assert.rejects(lost.update('web', { B: 'x' }), (e: HangarError) => e.code === 'SECRETS_KEY_MISSING');
    // Names are still listable; no new key was made behind the user's back.
    assert.deepEqual(lost.list('web').secrets.map((x) => x.name), ['A']);
    assert.throws(() => statSync(SecretKey.path(dir)));
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('app log lines are stored with secret values redacted, including lines of multi-line values', async () => {
  const dir = tmp();
  const store = openStore(dir);
  try {
    const s = new Secrets({ store, dataDir: dir, log: quiet });
    const pem = '-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END KEY-----';
    await s.update('web', { PASSWORD: 'correct-horse-battery', PEM: pem, SHORT: 'ab' });
    const logs = new RedactingLogStore(store, s);
    logs.append('web', 'm1', 'stdout', 'connecting with correct-horse-battery to db');
    logs.append('web', 'm1', 'stdout', 'MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu');
    logs.append('web', 'm1', 'stdout', 'about the ab test');
    logs.append('other', 'm2', 'stdout', 'correct-horse-battery');
    const lines = logs.query({ app: 'web' }).map((l) => l.message);
    assert.deepEqual(lines, [`connecting with ${REDACTED} to db`, REDACTED, 'about the ab test']);
    // Redaction is per app: another app's lines are its own business.
    assert.equal(logs.query({ app: 'other' })[0]!.message, 'correct-horse-battery');
    // A changed value is redacted from the next line on.
    await s.update('web', { PASSWORD: 'new-password-value' });
    logs.append('web', 'm1', 'stderr', 'pw=new-password-value');
    assert.equal(logs.query({ app: 'web' }).at(-1)!.message, `pw=${REDACTED}`);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('secrets API and CLI: Fly shapes, no values in any response, DB, log or file in the data dir', async () => {
  const daemonLog: string[] = [];
  const t = await startTestDaemon({ logger: createLogger((l) => daemonLog.push(l)) });
  const planted = `planted-${randomBytes(12).toString('hex')}`;
  const responses: string[] = [];
  const api = async (method: string, path: string, body?: unknown, token?: string) => {
    const r = await t.api(method, path, body, token);
    responses.push(JSON.stringify(r.body ?? ''));
    return r;
  };
  try {
    assert.equal((await api('POST', '/v1/apps', { app_name: 'web' })).status, 201);
    const set = await api('POST', '/v1/apps/web/secrets', { values: { DB_PASSWORD: planted, OTHER: 'x' } });
    assert.equal(set.status, 200);
    assert.equal(set.body.version, 1);
    assert.deepEqual(set.body.secrets.map((x: { name: string }) => x.name), ['DB_PASSWORD', 'OTHER']);
    for (const k of ['name', 'digest', 'status', 'created_at', 'updated_at']) assert.ok(k in set.body.secrets[0], k);

    const one = await api('POST', '/v1/apps/web/secrets/SINGLE', { value: planted + '-2' }, undefined);
    assert.equal(one.status, 200);
    assert.equal(one.body.name, 'SINGLE');
    assert.equal((await api('GET', '/v1/apps/web/secrets/SINGLE')).body.digest, one.body.digest);
    const list = await api('GET', '/v1/apps/web/secrets');
    assert.equal(list.body.secrets.length, 3);

    // Bad input: 400, nothing changed.
    const badName = await api('POST', '/v1/apps/web/secrets', { values: { GOOD: 'v', 'bad-name': planted } });
    assert.equal(badName.status, 400);
    assert.match(badName.body.error, /bad-name.*not a valid environment variable name/);
    const tooBig = await api('POST', '/v1/apps/web/secrets/BIG', { value: 'q'.repeat(MAX_VALUE_BYTES + 1) });
    assert.equal(tooBig.status, 400);
    assert.match(tooBig.body.error, /64 KiB/);
    assert.equal((await api('GET', '/v1/apps/web/secrets')).body.secrets.length, 3);
    assert.equal((await api('DELETE', '/v1/apps/web/secrets/NOPE')).status, 404);
    assert.equal((await api('GET', '/v1/apps/nope/secrets')).status, 404);

    // Another org's token cannot see or touch them.
    await api('POST', '/v1/orgs', { slug: 'acme' });
    const tok = await api('POST', '/v1/tokens', { name: 't', org_slug: 'acme' });
    assert.equal((await api('GET', '/v1/apps/web/secrets', undefined, tok.body.token)).status, 404);
    assert.equal((await api('POST', '/v1/apps/web/secrets', { values: { X: 'y' } }, tok.body.token)).status, 404);

    // The CLI: set from args, from stdin (NAME=-), import, list, unset, deploy.
    const env = { HANGAR_API_URL: t.daemon.url, HANGAR_ACCESS_TOKEN: t.adminToken };
    let r = await runCli(['secrets', 'set', 'CLI_ONE=abc', '-a', 'web'], env);
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['secrets', 'set', 'FROM_STDIN=-', '-a', 'web', '--stage'], env, planted + '-stdin\n');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /staged/);
    r = await runCli(['secrets', 'import', '-a', 'web'], env, `# comment\nIMP_A=1\n\nIMP_B="""line1\nline2"""\n`);
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['secrets', 'list', '-a', 'web', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const names = JSON.parse(r.stdout).secrets.map((x: { name: string }) => x.name);
    assert.deepEqual(names, ['CLI_ONE', 'DB_PASSWORD', 'FROM_STDIN', 'IMP_A', 'IMP_B', 'OTHER', 'SINGLE']);
    responses.push(r.stdout);
    r = await runCli(['secrets', 'list', '-a', 'web'], env);
    assert.match(r.stdout, /NAME\s+DIGEST\s+STATUS/);
    responses.push(r.stdout);
    assert.deepEqual(t.daemon.secrets.valuesFor('web').IMP_B, 'line1\nline2');
    assert.equal(t.daemon.secrets.valuesFor('web').FROM_STDIN, planted + '-stdin');
    r = await runCli(['secrets', 'set', 'bad-name=1', '-a', 'web'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not a valid environment variable name/);
    r = await runCli(['secrets', 'unset', 'OTHER', 'MISSING', '-a', 'web'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /MISSING/);
    r = await runCli(['secrets', 'unset', 'OTHER', '-a', 'web'], env);
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['secrets', 'deploy', '-a', 'web'], env);
    assert.equal(r.code, 0, r.stderr);

    // The planted value is nowhere: not in responses, the daemon log, or any file.
    for (const body of responses) assert.equal(body.includes('planted-'), false, body.slice(0, 200));
    assert.equal(daemonLog.join('\n').includes(planted), false);
    t.daemon.store.db.pragma('wal_checkpoint(TRUNCATE)');
    assert.deepEqual(filesContaining(t.dataDir, planted), []);
    // ...but it is really stored (sealed), so the search above means something.
    assert.equal(t.daemon.secrets.valuesFor('web').DB_PASSWORD, planted);
  } finally {
    await t.close();
  }
});

test('destroying an app removes its secrets and volumes: a new app of the same name starts empty', async () => {
  const t = await startTestDaemon();
  try {
    await t.api('POST', '/v1/apps', { app_name: 'reused' });
    await t.api('POST', '/v1/apps/reused/secrets', { values: { TOKEN: 'old-owner-token' } });
    const v = (await t.api('POST', '/v1/apps/reused/volumes', { name: 'data' })).body;
    const img = t.daemon.volumes.imagePath(v.id);
    assert.ok(statSync(img).size > 0);
    assert.equal((await t.api('DELETE', '/v1/apps/reused')).status, 202);
    await t.api('POST', '/v1/apps', { app_name: 'reused' });
    assert.deepEqual((await t.api('GET', '/v1/apps/reused/secrets')).body.secrets, []);
    assert.deepEqual((await t.api('GET', '/v1/apps/reused/volumes')).body, []);
    assert.deepEqual(t.daemon.secrets.valuesFor('reused'), {});
    assert.throws(() => statSync(img));
  } finally {
    await t.close();
  }
});
