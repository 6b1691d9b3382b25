import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startTestDaemon } from '../helpers/daemon.js';

test('first start creates org personal and a 0600 admin token; restart keeps it', async () => {
  const t = await startTestDaemon();
  try {
    const mode = statSync(join(t.dataDir, 'admin-token')).mode & 0o777;
    assert.equal(mode, 0o600);
    const orgs = await t.api('GET', '/v1/orgs');
    assert.equal(orgs.status, 200);
    assert.deepEqual(orgs.body.organizations.map((o: { slug: string }) => o.slug), ['personal']);
  } finally {
    await t.daemon.close();
  }
  // Restart on the same data dir: same admin token still works, no second admin.
  const again = await startTestDaemon({ dataDir: t.dataDir });
  try {
    assert.equal(again.adminToken, t.adminToken);
    const res = await again.api('GET', '/v1/apps');
    assert.equal(res.status, 200);
  } finally {
    await again.close();
  }
});

test('apps: create, get, list, destroy in Fly shapes; errors are {"error"} with the right status', async () => {
  const t = await startTestDaemon();
  try {
    const created = await t.api('POST', '/v1/apps', { app_name: 'web', org_slug: 'personal' });
    assert.equal(created.status, 201);
    assert.equal(created.body.name, 'web');
    assert.equal(created.body.organization.slug, 'personal');

    const dup = await t.api('POST', '/v1/apps', { app_name: 'web' });
    assert.equal(dup.status, 409);
    assert.match(dup.body.error, /already exists/);

    const bad = await t.api('POST', '/v1/apps', { app_name: '../etc' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /invalid app name/);

    const missingField = await t.api('POST', '/v1/apps', {});
    assert.equal(missingField.status, 400);
    assert.match(missingField.body.error, /app_name/);

    const got = await t.api('GET', '/v1/apps/web');
    assert.equal(got.status, 200);
    assert.equal(got.body.id, created.body.id);

    const list = await t.api('GET', '/v1/apps');
    assert.equal(list.body.total_apps, 1);

    assert.equal((await t.api('DELETE', '/v1/apps/web')).status, 202);
    assert.equal((await t.api('GET', '/v1/apps/web')).status, 404);
  } finally {
    await t.close();
  }
});

test('auth: missing, unknown, revoked and expired tokens get 401; other orgs see nothing', async () => {
  const t = await startTestDaemon();
  try {
    const anon = await fetch(t.daemon.url + '/v1/apps');
    assert.equal(anon.status, 401);
    assert.match(((await anon.json()) as { error: string }).error, /no access token/);
    assert.equal((await t.api('GET', '/v1/apps', undefined, 'hgr_nope')).status, 401);

    await t.api('POST', '/v1/orgs', { slug: 'acme' });
    await t.api('POST', '/v1/orgs', { slug: 'rival' });
    const acme = (await t.api('POST', '/v1/tokens', { org_slug: 'acme', name: 'ci' })).body;
    const rival = (await t.api('POST', '/v1/tokens', { org_slug: 'rival' })).body;
    assert.match(acme.token, /^hgr_/);

    // Org tokens create apps in their own org by default.
    const app = await t.api('POST', '/v1/apps', { app_name: 'acme-web' }, acme.token);
    assert.equal(app.body.organization.slug, 'acme');
    // Another org's token: the app does not exist for it, and it cannot create in acme.
    assert.equal((await t.api('GET', '/v1/apps/acme-web', undefined, rival.token)).status, 404);
    assert.equal((await t.api('DELETE', '/v1/apps/acme-web', undefined, rival.token)).status, 404);
    assert.equal((await t.api('POST', '/v1/apps', { app_name: 'x', org_slug: 'acme' }, rival.token)).status, 403);
    assert.equal((await t.api('GET', '/v1/apps', undefined, rival.token)).body.total_apps, 0);
    // System org names are reserved.
    const reserved = await t.api('POST', '/v1/orgs', { slug: 'hangar-system' });
    assert.equal(reserved.status, 400);
    assert.match(reserved.body.error, /reserved/);
    // Only the admin creates orgs.
    assert.equal((await t.api('POST', '/v1/orgs', { slug: 'evil' }, rival.token)).status, 403);

    // Revoke: 401 afterwards; the app survives.
    assert.equal((await t.api('DELETE', `/v1/tokens/${rival.id}`, undefined, acme.token)).status, 404, 'cannot revoke another org token');
    assert.equal((await t.api('DELETE', `/v1/tokens/${acme.id}`, undefined, acme.token)).status, 200);
    const revoked = await t.api('GET', '/v1/apps', undefined, acme.token);
    assert.equal(revoked.status, 401);
    assert.match(revoked.body.error, /revoked/);
    assert.equal((await t.api('GET', '/v1/apps/acme-web')).status, 200);

    // Expired token.
    const short = (await t.api('POST', '/v1/tokens', { org_slug: 'acme', expiry: '1s' })).body;
    await new Promise((r) => setTimeout(r, 1100));
    const expired = await t.api('GET', '/v1/apps', undefined, short.token);
    assert.equal(expired.status, 401);
    assert.match(expired.body.error, /expired/);
    assert.equal((await t.api('POST', '/v1/tokens', { org_slug: 'acme', expiry: 'soon' })).status, 400);
  } finally {
    await t.close();
  }
});

test('tokens are stored hashed: no secret appears in the database file', async () => {
  const t = await startTestDaemon();
  try {
    const { token } = (await t.api('POST', '/v1/tokens', { org_slug: 'personal' })).body;
    const db = new Database(join(t.dataDir, 'hangar.db'), { readonly: true });
    const rows = db.prepare('SELECT * FROM tokens').all();
    db.close();
    const dump = JSON.stringify(rows) + readFileSync(join(t.dataDir, 'hangar.db')).toString('latin1');
    assert.ok(!dump.includes(token));
    assert.ok(!dump.includes(t.adminToken));
  } finally {
    await t.close();
  }
});

test('unknown endpoints and methods answer 404/405 as JSON; bad JSON is a 400', async () => {
  const t = await startTestDaemon();
  try {
    const nf = await t.api('GET', '/v1/nope');
    assert.equal(nf.status, 404);
    assert.ok(nf.body.error);
    assert.equal((await t.api('PUT', '/v1/apps')).status, 405);
    const res = await fetch(t.daemon.url + '/v1/apps', {
      method: 'POST',
      headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' },
      body: '{not json',
    });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: string }).error, /not valid JSON/);
  } finally {
    await t.close();
  }
});
