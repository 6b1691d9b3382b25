import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { findGuestArtifacts, INIT_EXIT_CODES, startVm, type RunConfig } from '../../src/vm/index.js';
import { collectLogs, makeRootfs, tempDir, withTimeout, BOOT_TIMEOUT_MS, type RootfsOptions } from './fixtures.js';

interface Case {
  name: string;
  rootfs?: RootfsOptions;
  run: RunConfig;
  code: number;
  error: string;
  message: RegExp;
  memoryMb?: number;
}

const sh = (script: string): RunConfig['image'] => ({ cmd: ['/bin/sh', '-c', script] });

const cases: Case[] = [
  {
    name: '/dev is a symlink', code: INIT_EXIT_CODES.hostile_rootfs, error: 'hostile_rootfs', message: /\/dev is a symlink \(to \/\)/,
    rootfs: { customize: (r) => symlinkSync('/', join(r, 'dev')) }, run: { image: sh('echo should-not-run') },
  },
  {
    name: '/proc is a symlink', code: INIT_EXIT_CODES.hostile_rootfs, error: 'hostile_rootfs', message: /\/proc is a symlink/,
    rootfs: { customize: (r) => symlinkSync('/etc', join(r, 'proc')) }, run: { image: sh('echo should-not-run') },
  },
  {
    name: '/etc is a symlink', code: INIT_EXIT_CODES.hostile_rootfs, error: 'hostile_rootfs', message: /\/etc is a symlink \(to \/tmp\)/,
    rootfs: { passwd: false, customize: (r) => { rmSync(join(r, 'etc'), { recursive: true }); symlinkSync('/tmp', join(r, 'etc')); } }, run: { image: sh('echo should-not-run') },
  },
  {
    name: 'a named USER without /etc/passwd', code: INIT_EXIT_CODES.no_passwd, error: 'no_passwd', message: /USER app .*no readable \/etc\/passwd/,
    rootfs: { passwd: false }, run: { image: { ...sh('echo should-not-run'), user: 'app' } },
  },
  {
    name: 'an unknown user', code: INIT_EXIT_CODES.unknown_user, error: 'unknown_user', message: /USER nobody2 is not in the image's \/etc\/passwd/,
    run: { image: sh('echo should-not-run'), user: 'nobody2' },
  },
  {
    name: 'a missing entrypoint binary', code: INIT_EXIT_CODES.entrypoint_not_found, error: 'entrypoint_not_found', message: /command \/app\/server does not exist/,
    run: { image: { entrypoint: ['/app/server'], cmd: ['--port', '8080'] } },
  },
];

for (const c of cases) {
  test(`hostile or broken image: ${c.name} → exit ${c.code} with a clear message, no hang`, { timeout: 300_000 }, async () => {
    findGuestArtifacts();
    const dir = tempDir();
    try {
      const rootfs = await makeRootfs(dir, 'img', c.rootfs);
      const h = await startVm({ id: 'hostile', stateDir: join(dir, 'vm'), rootfs, run: c.run, memoryMb: c.memoryMb });
      const logs = collectLogs(h);
      const exit = await withTimeout(h.waitExit(), BOOT_TIMEOUT_MS, 'VM exit');
      await h.dispose();
      assert.equal(exit.reason, 'init_error', exit.message);
      assert.equal(exit.exitCode, c.code);
      assert.equal(exit.error, c.error);
      assert.match(exit.message, c.message);
      assert.ok(logs.text('init').some((l) => c.message.test(l)), `the reason is on the log stream: ${logs.text('init').join(' | ')}`);
      assert.ok(!logs.text('stdout').includes('should-not-run'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('an app killed by the OOM killer is reported as oomKilled with 137', { timeout: 300_000 }, async () => {
  findGuestArtifacts();
  const dir = tempDir();
  try {
    const rootfs = await makeRootfs(dir, 'img');
    // tail keeps the last lines of a newline-free stream: it grows until the OOM killer fires
    const h = await startVm({ id: 'oom', stateDir: join(dir, 'vm'), rootfs, memoryMb: 160, run: { image: { cmd: ['/bin/tail', '/dev/zero'] } } });
    const exit = await withTimeout(h.waitExit(), BOOT_TIMEOUT_MS, 'VM exit');
    await h.dispose();
    assert.deepEqual([exit.reason, exit.exitCode, exit.signal, exit.oomKilled], ['exited', 137, 9, true], exit.message);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
