import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { startRegistry, ociError, pushImage, type RegistryFixture } from './helpers.js';
import { TokenSigner } from '../../src/registry/tokens.js';
import { writeDockerConfig } from '../../src/registry/index.js';

let r: RegistryFixture;
before(async () => {
  r = await startRegistry();
  await pushImage(r, 'demo', 'v1');
});
after(async () => {
  await r.close();
});

async function getToken(query: string, authorization?: string) {
  return r.http('GET', `/auth/token?${query}`, { headers: authorization ? { authorization } : {}, token: null });
}

test('no credentials: 401 with a Bearer challenge naming realm, service and scope', async () => {
  const res = await r.http('GET', '/v2/demo/manifests/v1', { token: null });
  assert.equal(res.status, 401);
  assert.equal(ociError(res).code, 'UNAUTHORIZED');
  assert.equal(res.headers['www-authenticate'], `Bearer realm="http://${r.host}/auth/token",service="hangar",scope="repository:demo:pull"`);
  const push = await r.http('POST', '/v2/demo/blobs/uploads/', { token: null });
  assert.equal(push.status, 401);
  assert.match(String(push.headers['www-authenticate']), /scope="repository:demo:pull,push"/);
  const base = await r.http('GET', '/v2/', { token: null });
  assert.equal(base.status, 401);
  assert.equal(base.headers['www-authenticate'], `Bearer realm="http://${r.host}/auth/token",service="hangar"`);
  const wrong = await r.http('GET', '/v2/demo/tags/list', { token: 'hgr_not-a-real-token' });
  assert.equal(wrong.status, 401);
  assert.ok(wrong.headers['www-authenticate']);
});

test('token endpoint: Basic auth with an API token yields a scoped, short-lived JWT the registry accepts', async () => {
  const res = await getToken('service=hangar&scope=repository:demo:pull,push', r.basic());
  assert.equal(res.status, 200);
  const body = res.json();
  assert.equal(body.token, body.access_token);
  assert.equal(typeof body.expires_in, 'number');
  assert.ok(body.expires_in > 0 && body.expires_in <= 3600);
  assert.ok(!Number.isNaN(Date.parse(body.issued_at)));
  const claims = JSON.parse(Buffer.from(body.token.split('.')[1], 'base64url').toString());
  assert.deepEqual(claims.access, [{ type: 'repository', name: 'demo', actions: ['pull', 'push'] }]);
  const bearer = { authorization: `Bearer ${body.token}` };
  assert.equal((await r.http('GET', '/v2/demo/manifests/v1', { headers: bearer })).status, 200);
  assert.equal((await r.http('POST', '/v2/demo/blobs/uploads/', { headers: bearer })).status, 202);
  // Scoped: another repository of the same org is not covered → 401 insufficient_scope, so clients ask again.
  const other = await r.http('GET', '/v2/other/tags/list', { headers: bearer });
  assert.equal(other.status, 401);
  assert.match(String(other.headers['www-authenticate']), /scope="repository:other:pull".*error="insufficient_scope"/);

  // Pull-only token cannot push.
  const pullOnly = (await getToken('service=hangar&scope=repository:demo:pull', r.basic())).json().token;
  const denied = await r.http('POST', '/v2/demo/blobs/uploads/', { headers: { authorization: `Bearer ${pullOnly}` } });
  assert.equal(denied.status, 403);
  assert.equal(ociError(denied).code, 'DENIED');

  // OAuth2 form POST works too.
  const form = await r.http('POST', '/auth/token', {
    token: null,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `grant_type=password&username=x&password=${encodeURIComponent(r.token)}&service=hangar&scope=repository:demo:pull&client_id=test`,
  });
  assert.equal(form.status, 200);
  assert.equal((await r.http('GET', '/v2/demo/tags/list', { headers: { authorization: `Bearer ${form.json().access_token}` } })).status, 200);
});

test('API tokens work directly as Basic password and as Bearer', async () => {
  assert.equal((await r.http('GET', '/v2/demo/tags/list', { headers: { authorization: r.basic() } })).status, 200);
  assert.equal((await r.http('GET', '/v2/demo/tags/list', { headers: { authorization: `Bearer ${r.token}` } })).status, 200);
});

test('token endpoint refuses bad credentials; anonymous gets a token that grants nothing', async () => {
  const bad = await getToken('service=hangar&scope=repository:demo:pull', 'Basic ' + Buffer.from('u:hgr_wrong').toString('base64'));
  assert.equal(bad.status, 401);
  assert.equal(ociError(bad).code, 'UNAUTHORIZED');
  const anon = await getToken('service=hangar&scope=repository:demo:pull');
  assert.equal(anon.status, 200);
  const res = await r.http('GET', '/v2/demo/manifests/v1', { headers: { authorization: `Bearer ${anon.json().token}` } });
  assert.equal(res.status, 401);
  assert.ok(res.headers['www-authenticate']);
});

test("another org's token is denied, and cannot tell a missing repository from an existing one", async () => {
  for (const repo of ['demo', 'ghost-app']) {
    const direct = await r.http('GET', `/v2/${repo}/manifests/v1`, { token: r.rivalToken });
    assert.equal(direct.status, 403, repo);
    assert.equal(ociError(direct).code, 'DENIED');
    assert.equal(direct.body.toString().includes('ghost'), false);
    const push = await r.http('POST', `/v2/${repo}/blobs/uploads/`, { token: r.rivalToken });
    assert.equal(push.status, 403);
    // Through the token endpoint: no actions granted; the registry says DENIED.
    const tok = (await getToken(`service=hangar&scope=repository:${repo}:pull,push`, r.basic(r.rivalToken))).json();
    const claims = JSON.parse(Buffer.from(tok.token.split('.')[1], 'base64url').toString());
    assert.deepEqual(claims.access, [{ type: 'repository', name: repo, actions: [] }]);
    const viaJwt = await r.http('GET', `/v2/${repo}/manifests/v1`, { headers: { authorization: `Bearer ${tok.token}` } });
    assert.equal(viaJwt.status, 403);
    assert.deepEqual(viaJwt.json(), direct.json());
  }
});

test('expired or tampered registry token: 401 with the challenge', async () => {
  const keyPath = join(r.dataDir, 'registry', 'token.key');
  assert.equal(statSync(keyPath).mode & 0o777, 0o600);
  const signer = new TokenSigner(keyPath);
  const now = Math.floor(Date.now() / 1000);
  const principal = r.daemon.accounts.authenticate(r.token);
  const claims = { iss: 'hangar', aud: 'hangar', sub: principal.tokenId, org: principal.orgId, iat: now - 700, nbf: now - 700, exp: now - 100, jti: randomUUID(), access: [{ type: 'repository', name: 'demo', actions: ['pull'] }] };
  const expired = signer.sign(claims);
  const res = await r.http('GET', '/v2/demo/manifests/v1', { headers: { authorization: `Bearer ${expired}` } });
  assert.equal(res.status, 401);
  assert.match(ociError(res).message, /expired/);
  assert.match(String(res.headers['www-authenticate']), /^Bearer realm=.*error="invalid_token"/);
  // Same claims, still valid, but signature tampered.
  const valid = signer.sign({ ...claims, exp: now + 300 });
  assert.equal((await r.http('GET', '/v2/demo/manifests/v1', { headers: { authorization: `Bearer ${valid}` } })).status, 200);
  const keyDir = mkdtempSync(join(tmpdir(), 'hangar-key-'));
  try {
    const forged = new TokenSigner(join(keyDir, 'k')).sign({ ...claims, exp: now + 300 });
    assert.equal((await r.http('GET', '/v2/demo/manifests/v1', { headers: { authorization: `Bearer ${forged}` } })).status, 401);
  } finally {
    rmSync(keyDir, { recursive: true, force: true });
  }
});

test('catalog needs credentials', async () => {
  const res = await r.http('GET', '/v2/_catalog', { token: null });
  assert.equal(res.status, 401);
  assert.match(String(res.headers['www-authenticate']), /scope="registry:catalog:\*"/);
});

test('writeDockerConfig merges into config.json (0600), keeps other entries, writes the containers drop-in', () => {
  const home = mkdtempSync(join(tmpdir(), 'hangar-home-'));
  try {
    const dc = join(home, '.docker');
    mkdirSync(dc);
    writeFileSync(join(dc, 'config.json'), JSON.stringify({ auths: { 'ghcr.io': { auth: 'eA==' } }, credHelpers: { [r.host]: 'desktop', 'gcr.io': 'gcloud' }, psFormat: 'x' }));
    const out = writeDockerConfig({ host: r.host, token: r.token, home, dockerConfigDir: dc });
    const cfg = JSON.parse(readFileSync(out.configPath, 'utf8'));
    assert.equal(statSync(out.configPath).mode & 0o777, 0o600);
    assert.equal(cfg.auths['ghcr.io'].auth, 'eA==');
    assert.equal(cfg.psFormat, 'x');
    assert.deepEqual(cfg.credHelpers, { 'gcr.io': 'gcloud' });
    assert.equal(Buffer.from(cfg.auths[r.host].auth, 'base64').toString(), `hangar:${r.token}`);
    assert.match(readFileSync(out.registriesConfPath!, 'utf8'), new RegExp(`location = "${r.host.replace(/\./g, '\\.')}"\\ninsecure = true`));
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('the docker.io/ base-image mirror: every org pulls, only the admin pushes', async () => {
  const { ensureMirrorOwner } = await import('../../src/build/mirror.js');
  ensureMirrorOwner(r.daemon.store, r.daemon.accounts);
  const cfg = Buffer.from('{}');
  const d = `sha256:${(await import('node:crypto')).createHash('sha256').update(cfg).digest('hex')}`;
  assert.equal((await r.http('POST', `/v2/docker.io/library/debian/blobs/uploads/?digest=${d}`, { body: cfg, token: r.adminToken })).status, 201);
  const m = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d, size: 2 }, layers: [] });
  assert.equal((await r.http('PUT', '/v2/docker.io/library/debian/manifests/bookworm-slim', { body: m, token: r.adminToken, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })).status, 201);
  for (const token of [r.token, r.rivalToken]) {
    assert.equal((await r.http('GET', '/v2/docker.io/library/debian/manifests/bookworm-slim', { token })).status, 200);
    const push = await r.http('POST', '/v2/docker.io/library/debian/blobs/uploads/', { token });
    assert.equal(push.status, 403);
    const jwt = (await getToken('service=hangar&scope=repository:docker.io/library/debian:pull,push', r.basic(token))).json().token;
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
    assert.deepEqual(claims.access[0].actions, ['pull']);
  }
  assert.equal((await r.http('GET', '/v2/docker.io/library/debian/manifests/bookworm-slim', { token: null })).status, 401);
});
