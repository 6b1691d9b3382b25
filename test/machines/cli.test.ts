import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestDaemon } from '../helpers/daemon.js';
import { hangar } from '../helpers/cli.js';
import { pushBusybox, waitState } from '../helpers/machines.js';

test('CLI: machine run, list, status, exec, stop, destroy and logs against a real VM', async () => {
  const t = await startTestDaemon();
  const env = { HANGAR_API_URL: t.daemon.url, HANGAR_ACCESS_TOKEN: t.adminToken, HANGAR_CONFIG_DIR: mkdtempSync(join(tmpdir(), 'hangar-cfg-')) };
  try {
    assert.equal((await hangar(['apps', 'create', 'clirun'], env)).code, 0);
    const image = await pushBusybox(t, 'clirun', 'v1');

    // Everything after IMAGE is the command; -e and -p are parsed before it.
    const run = await hangar(
      ['machine', 'run', image, '-a', 'clirun', '-e', 'GREETING=hello', '-p', '8080', '--json', '/bin/sh', '-c', 'echo "$GREETING from cli"; exec sleep 600'],
      env,
    );
    assert.equal(run.code, 0, run.stderr);
    const m = JSON.parse(run.stdout);
    assert.equal(m.state, 'started');
    assert.deepEqual(m.config.init.cmd, ['/bin/sh', '-c', 'echo "$GREETING from cli"; exec sleep 600']);
    assert.equal(m.config.env.GREETING, 'hello');
    assert.ok(m.host_ports['8080'] > 0, 'the service port is forwarded to the host');

    const list = await hangar(['machine', 'list', '-a', 'clirun'], env);
    assert.match(list.stdout, new RegExp(`${m.id}\\s+\\S+\\s+started`));

    const exec = await hangar(['machine', 'exec', m.id, '-a', 'clirun', '--', 'sh', '-c', 'echo out; echo err >&2; exit 4'], env);
    assert.equal(exec.code, 4);
    assert.equal(exec.stdout, 'out\n');
    assert.equal(exec.stderr, 'err\n');

    // Logs: the line arrives; --json gives one object per line.
    let logs = '';
    for (let i = 0; i < 100 && !logs.includes('hello from cli'); i++) {
      logs = (await hangar(['logs', '-a', 'clirun', '--no-tail'], env)).stdout;
      if (!logs.includes('hello from cli')) await new Promise((r) => setTimeout(r, 300));
    }
    assert.match(logs, new RegExp(`app\\[${m.id}\\] hello from cli`));
    const jsonLogs = (await hangar(['logs', '-a', 'clirun', '--no-tail', '--json'], env)).stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(jsonLogs.some((l) => l.message === 'hello from cli' && l.stream === 'stdout'));

    // Destroy without --force refuses a running machine, with the way out in the message.
    const refuse = await hangar(['machine', 'destroy', m.id, '-a', 'clirun'], env);
    assert.equal(refuse.code, 1);
    assert.match(refuse.stderr, /--force/);

    const stop = await hangar(['machine', 'stop', m.id, '-a', 'clirun', '--timeout', '2s'], env);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /is stopped/);
    await waitState(t, 'clirun', m.id, 'stopped');

    const status = await hangar(['machine', 'status', m.id, '-a', 'clirun'], env);
    assert.match(status.stdout, /State:\s+stopped/);
    assert.match(status.stdout, /exit/);

    assert.equal((await hangar(['machine', 'destroy', m.id, '-a', 'clirun'], env)).code, 0);
    const gone = await hangar(['machine', 'status', m.id, '-a', 'clirun'], env);
    assert.match(gone.stdout, /destroyed/);

    const usage = await hangar(['machine', 'run', '-a', 'clirun'], env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /missing IMAGE/);
  } finally {
    await t.close();
  }
});
