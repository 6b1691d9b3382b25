import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findGuestArtifacts, startVm } from '../../src/vm/index.js';
import { collectLogs, makeRootfs, tempDir, withTimeout } from './fixtures.js';

// A guest that never reaches its init, made deterministic: a wrapper starts
// the first qemu of this test with -S (vCPUs paused, so the kernel never runs)
// and every later one normally. The driver must notice, kill that launch and
// boot again (the second and last attempt has no kernel timeout, so a slow
// host cannot fail it), and the machine must behave as if nothing had happened.
test('a launch whose kernel never reaches the init is killed and booted again', { timeout: 300_000 }, async () => {
  findGuestArtifacts();
  const dir = tempDir();
  const counter = join(dir, 'launches');
  const wrapper = join(dir, 'qemu-wrapper');
  writeFileSync(wrapper, `#!/bin/sh
echo x >> '${counter}'
if [ "$(wc -l < '${counter}')" -eq 1 ]; then exec qemu-system-x86_64 -S "$@"; fi
exec qemu-system-x86_64 "$@"
`);
  chmodSync(wrapper, 0o755);
  process.env.HANGAR_QEMU = wrapper;
  process.env.HANGAR_ACCEL = 'tcg'; // no KVM probe through the wrapper
  try {
    const rootfs = await makeRootfs(dir, 'bb');
    const stateDir = join(dir, 'vm');
    const t0 = Date.now();
    const h = await startVm({
      id: 'hang-once', stateDir, rootfs, kernelTimeoutMs: 4000, bootAttempts: 2,
      run: { image: { cmd: ['/bin/sh', '-c', 'echo booted; sleep 600'] } },
    });
    const logs = collectLogs(h);
    await logs.waitFor((l) => l.line === 'booted');
    await withTimeout(h.waitStarted(), 10_000, 'started');
    assert.equal(readFileSync(counter, 'utf8').trim().split('\n').length, 2, 'exactly one relaunch');
    assert.ok(Date.now() - t0 >= 4000, 'the first launch was given its whole kernel timeout');
    assert.ok(existsSync(join(stateDir, 'console.log.hung')), 'the hung launch keeps its console for diagnosis');
    const exit = await h.kill();
    assert.equal(exit.reason, 'killed');
    const stray = spawnSync('pgrep', ['-f', '-name hangar-hang-once']).stdout.toString().trim();
    assert.equal(stray, '', 'the hung first launch was killed, not left running');
  } finally {
    delete process.env.HANGAR_QEMU;
    delete process.env.HANGAR_ACCEL;
    rmSync(dir, { recursive: true, force: true });
  }
});
