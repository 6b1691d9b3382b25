import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAppConfig, loadAppConfig, machineConfigFor, processGroups, resolveLocalFiles, checksOf, shellSplit, describeKeyReport } from '../../src/appconfig/index.js';
import { machineConfigSchema } from '../../src/machines/config.js';

const FLY_TOML = `
app = "shop"
primary_region = "ams"
kill_signal = "SIGTERM"
kill_timeout = "30s"
swap_size_mb = 512
console_command = "/bin/bash"

[build]
  dockerfile = "Dockerfile.prod"
  build-target = "runtime"
  [build.args]
    NODE_VERSION = "20"
    DEBUG = 1

[deploy]
  strategy = "canary"
  release_command = "python manage.py migrate"
  max_unavailable = 0.5
  wait_timeout = "5m"

[env]
  PORT = "8080"
  LOG_LEVEL = "info"

[processes]
  web = "python -m http.server 8080"
  worker = "python worker.py --queue 'high prio'"

[http_service]
  internal_port = 8080
  force_https = true
  auto_stop_machines = "stop"
  auto_start_machines = true
  min_machines_running = 1
  processes = ["web"]
  [http_service.concurrency]
    type = "requests"
    soft_limit = 20
  [[http_service.checks]]
    interval = "10s"
    timeout = "2s"
    grace_period = "5s"
    path = "/healthz"
  [http_service.tls_options]
    alpn = ["h2"]

[[services]]
  internal_port = 9000
  protocol = "tcp"
  processes = ["worker"]
  [[services.ports]]
    port = 9000
  [[services.tcp_checks]]
    interval = "15s"

[checks.alive]
  type = "tcp"
  port = 8080
  processes = ["web"]

[[mounts]]
  source = "data"
  destination = "/data"
  processes = ["worker"]

[[vm]]
  memory = "1gb"
  cpus = 2
  processes = ["worker"]

[[vm]]
  size = "shared-cpu-2x"
  processes = ["web"]

[[restart]]
  policy = "never"
  processes = ["worker"]

[[files]]
  guest_path = "/etc/app.conf"
  raw_value = "aGVsbG8="

[[statics]]
  guest_path = "/app/public"
  url_prefix = "/static"
`;

test('a full fly.toml loads as it is, with ignored keys reported', () => {
  const { config, report } = parseAppConfig(FLY_TOML, 'fly.toml');
  assert.equal(config.app, 'shop');
  assert.equal(config.kill_signal, 'SIGTERM');
  assert.equal(config.build?.['build-target'], 'runtime');
  assert.deepEqual(config.build?.args, { NODE_VERSION: '20', DEBUG: '1' });
  assert.equal(config.deploy?.strategy, 'canary');
  assert.deepEqual(processGroups(config), ['web', 'worker']);
  assert.deepEqual(report.ignored.sort(), ['console_command', 'http_service.tls_options', 'statics', 'swap_size_mb']);
  assert.deepEqual(report.unknown, []);
  const lines = describeKeyReport(report, 'fly.toml');
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /swap_size_mb/);
});

test('unknown keys are reported, not fatal', () => {
  const { report } = parseAppConfig('app = "a"\nkill_signall = "SIGINT"\n[http_service]\ninternal_prot = 3\n');
  assert.deepEqual(report.unknown.sort(), ['http_service.internal_prot', 'kill_signall']);
});

test('process groups translate to machine configs Fly would send', () => {
  const { config } = parseAppConfig(FLY_TOML, 'fly.toml');
  const web = machineConfigFor(config, 'web', { image: 'shop:deployment-1', releaseId: 'r1', releaseVersion: 3 });
  machineConfigSchema.parse(web); // valid for the Machines API
  assert.deepEqual(web.init?.cmd, ['python', '-m', 'http.server', '8080']);
  assert.equal(web.env?.FLY_PROCESS_GROUP, 'web');
  assert.equal(web.env?.PRIMARY_REGION, 'ams');
  assert.equal(web.env?.PORT, '8080');
  assert.deepEqual(web.guest, { cpus: 2, memory_mb: 512, cpu_kind: 'shared' });
  assert.equal(web.services?.length, 1);
  const svc = web.services![0]!;
  assert.equal(svc.internal_port, 8080);
  assert.equal(svc.autostop, 'stop');
  assert.equal(svc.min_machines_running, 1);
  assert.deepEqual(svc.ports?.[0], { port: 80, handlers: ['http'], force_https: true });
  assert.equal(svc.checks?.[0]?.path, '/healthz');
  assert.deepEqual(Object.keys(web.checks ?? {}), ['alive']);
  assert.deepEqual(web.stop_config, { signal: 'SIGTERM', timeout: '30s' });
  assert.equal(web.mounts, undefined);
  assert.equal(web.metadata?.fly_process_group, 'web');
  assert.equal(web.metadata?.fly_release_version, '3');
  assert.equal(web.files?.[0]?.raw_value, 'aGVsbG8=');
  const checks = checksOf(web);
  assert.deepEqual(checks.map((c) => [c.type, c.port, c.path]).sort(), [['http', 8080, '/healthz'], ['tcp', 8080, '/']]);
  assert.equal(checks.find((c) => c.type === 'http')!.gracePeriodMs, 5000);

  const worker = machineConfigFor(config, 'worker', { image: 'shop:x' });
  assert.deepEqual(worker.init?.cmd, ['python', 'worker.py', '--queue', 'high prio']);
  assert.deepEqual(worker.guest, { cpus: 2, memory_mb: 1024, cpu_kind: 'shared' });
  assert.deepEqual(worker.mounts, [{ volume: 'data', name: 'data', path: '/data' }]);
  assert.deepEqual(worker.restart, { policy: 'no' });
  assert.equal(worker.services?.[0]?.internal_port, 9000);
  assert.equal(worker.services?.[0]?.checks?.[0]?.type, 'tcp');
  assert.equal(worker.checks, undefined);
  assert.throws(() => machineConfigFor(config, 'nope', { image: 'x' }), /not in \[processes\]/);
});

test('defaults: one group "app", SIGINT, 5 s, shared-cpu-1x', () => {
  const { config } = parseAppConfig('app = "a"\n[http_service]\n');
  assert.deepEqual(processGroups(config), ['app']);
  const mc = machineConfigFor(config, 'app', { image: 'a:1' });
  assert.deepEqual(mc.stop_config, { signal: 'SIGINT', timeout: 5 });
  assert.deepEqual(mc.guest, { cpus: 1, memory_mb: 256, cpu_kind: 'shared' });
  assert.equal(mc.services?.[0]?.internal_port, 8080);
  assert.equal(mc.init, undefined);
  assert.deepEqual(checksOf(mc), []);
});

test('memory strings and numbers', () => {
  for (const [v, mb] of [['"512mb"', 512], ['"1gb"', 1024], ['"2GB"', 2048], ['768', 768], ['"1024"', 1024]] as const) {
    const { config } = parseAppConfig(`[[vm]]\nmemory = ${v}\n`);
    assert.equal(machineConfigFor(config, 'app', { image: 'x' }).guest?.memory_mb, mb, String(v));
  }
  assert.throws(() => parseAppConfig('[[vm]]\nmemory = "lots"\n'), /vm\.0\.memory: must be a size/);
});

test('invalid values fail with the key path and what is allowed', () => {
  const cases: Array<[string, RegExp]> = [
    ['[deploy]\nstrategy = "yolo"\n', /deploy\.strategy: must be one of rolling, immediate, canary, bluegreen/],
    ['[http_service]\ninternal_port = 70000\n', /http_service\.internal_port: must be a port number/],
    ['kill_signal = "SIGFOO"\n', /kill_signal: must be one of/],
    ['kill_timeout = 301\n', /kill_timeout/],
    ['[[mounts]]\nsource = "data"\ndestination = "/"\n', /mounts.*destination: must not be \//],
    ['[env]\nFLY_X = "1"\n', /env: names starting with FLY_/],
    ['[[vm]]\nsize = "huge"\n', /vm\.0\.size: must be one of shared-cpu-1x/],
    ['[deploy]\nmax_unavailable = 1.5\n', /deploy\.max_unavailable/],
    ['[[restart]]\npolicy = "sometimes"\n', /restart\.0\.policy: must be "always", "never" or "on-failure"/],
    ['[checks.x]\ntype = "udp"\n', /checks\.x\.type: must be "tcp" or "http"/],
    ['app = "Bad_Name"\n', /app: must be an app name/],
    ['[[files]]\nguest_path = "/x"\n', /files\.0: give exactly one of raw_value, local_path or secret_name/],
  ];
  for (const [text, re] of cases) assert.throws(() => parseAppConfig(text, 'fly.toml'), (e: Error) => re.test(e.message) && /fly\.toml/.test(e.message), text);
  assert.throws(() => parseAppConfig('app = \n'), /not valid TOML at line 1/);
});

test('files from local_path, config lookup order', () => {
  const dir = mkdtempSync(join(tmpdir(), 'appcfg-'));
  try {
    writeFileSync(join(dir, 'nginx.conf'), 'server {}');
    writeFileSync(join(dir, 'fly.toml'), 'app = "from-fly"\n[[files]]\nguest_path = "/etc/nginx.conf"\nlocal_path = "nginx.conf"\n');
    let loaded = loadAppConfig(dir)!;
    assert.equal(loaded.config.app, 'from-fly');
    const cfg = resolveLocalFiles(loaded.config, loaded.dir);
    const mc = machineConfigFor(cfg, 'app', { image: 'x' });
    assert.equal(Buffer.from(mc.files![0]!.raw_value!, 'base64').toString(), 'server {}');
    writeFileSync(join(dir, 'hangar.toml'), 'app = "from-hangar"\n');
    loaded = loadAppConfig(dir)!;
    assert.equal(loaded.config.app, 'from-hangar');
    assert.equal(loadAppConfig(join(dir, 'fly.toml'))!.config.app, 'from-fly');
    writeFileSync(join(dir, 'fly.toml'), 'app = "a"\n[[files]]\nguest_path = "/x"\nlocal_path = "missing"\n');
    assert.throws(() => resolveLocalFiles(loadAppConfig(join(dir, 'fly.toml'))!.config, dir), /local_path missing/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('shell splitting of process commands', () => {
  assert.deepEqual(shellSplit(`bin/run --name "a b" 'c d' e\\ f ""`), ['bin/run', '--name', 'a b', 'c d', 'e f', '']);
  assert.throws(() => shellSplit('echo "oops'), /unterminated/);
});
