import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { findGuestArtifacts, startVm } from '../../src/vm/index.js';
import { procStartTime } from '../../src/vm/state.js';
import { BOOT_TIMEOUT_MS, collectLogs, makeRootfs, tempDir, withTimeout } from './fixtures.js';

const APP = `
echo out1
echo err1 >&2
id
pwd
echo "env FOO=$FOO BAR=$BAR SECRET=$SECRET HOME=$HOME"
echo "hostname $(cat /etc/hostname) $(hostname)"
echo "file $(cat /etc/app/config.txt) mode $(stat -c %a /etc/app/config.txt)"
echo "resolv $(cat /etc/resolv.conf)"
(sleep 0.3 &)
httpd -p 8080 -h /srv/www
trap 'echo got-term; exit 42' TERM
echo ready
while :; do sleep 0.2; done
`;

test('a busybox machine: streams, user, workdir, env, files, exec, zombies, ports, SIGTERM; then a restart has a fresh root and kill() stops it', { timeout: 600_000 }, async () => {
  findGuestArtifacts();
  const dir = tempDir();
  try {
    const rootfs = await makeRootfs(dir, 'bb');
    const stateDir = join(dir, 'vm');
    const h = await startVm({
      id: 'boot-a', stateDir, rootfs, memoryMb: 256, ports: [{ guestPort: 8080 }],
      run: {
        image: { cmd: ['/bin/sh', '-c', APP], env: ['FOO=img', 'BAR=img'], user: 'app', workingDir: '/home/app' },
        env: { BAR: 'machine', SECRET: 'machine' },
        secrets: { SECRET: 's3cret' },
        hostname: 'hangar-a',
        files: [{ guestPath: '/etc/app/config.txt', rawValue: Buffer.from('from-files').toString('base64'), mode: 0o604 }],
      },
    });
    const logs = collectLogs(h);
    assert.ok(h.pid > 0);
    assert.equal(h.ports.length, 1);
    await logs.waitFor((l) => l.line === 'ready');
    await withTimeout(h.waitStarted(), 10_000, 'started');

    assert.ok(logs.text('stdout').includes('out1'));
    assert.deepEqual(logs.text('stderr'), ['err1'], 'stderr is a separate stream');
    assert.ok(!logs.text('stdout').includes('err1'));
    const id = logs.text('stdout').find((l) => l.startsWith('uid='));
    assert.match(id ?? '', /^uid=1000\(app\) gid=1000\(app\) groups=1000\(app\),2000\(extra\)$/);
    assert.ok(logs.text('stdout').includes('/home/app'), 'WorkingDir holds');
    // The secret wins over the machine env ("machine" would print as is) and the
    // init masks its value in app output before it leaves the guest.
    assert.ok(logs.text('stdout').includes('env FOO=img BAR=machine SECRET=[REDACTED] HOME=/home/app'), logs.text('stdout').join('\n'));
    assert.ok(logs.text('stdout').includes('hostname hangar-a hangar-a'));
    assert.ok(logs.text('stdout').includes('file from-files mode 604'));
    assert.ok(logs.text('stdout').includes('resolv nameserver 10.0.2.3'));
    for (let i = 1; i < logs.lines.length; i++) assert.ok(logs.lines[i]!.offset > logs.lines[i - 1]!.offset);

    const st = await h.status();
    assert.equal(st.state, 'running');
    assert.ok((st.appPid ?? 0) > 1);

    // exec: output, exit code, user, timeout
    const e1 = await h.exec(['sh', '-c', 'echo o; echo e >&2; whoami; exit 3']);
    assert.deepEqual([e1.exitCode, e1.stdout, e1.stderr, e1.timedOut], [3, 'o\nroot\n', 'e\n', false]);
    const e2 = await h.exec(['sleep', '10'], { timeoutMs: 500 });
    assert.equal(e2.timedOut, true);
    assert.equal(e2.signal, 9);
    const e3 = await h.exec(['no-such-command']);
    assert.equal(e3.exitCode, 127);

    // zombies: an orphan from the app and one from exec are both reaped by PID 1
    await h.exec(['sh', '-c', 'sleep 0.2 & exit 0']);
    await new Promise((r) => setTimeout(r, 1500));
    const z = await h.exec(['sh', '-c', 'for f in /proc/[0-9]*/status; do grep -q "^State:.*Z" $f && echo zombie $f; done; echo checked']);
    assert.equal(z.stdout, 'checked\n', `no zombies expected:\n${z.stdout}`);

    // a file written to / (ephemeral root: must be gone on the next boot)
    assert.equal((await h.exec(['sh', '-c', 'echo x > /persist-test'])).exitCode, 0);

    // forwarded port reaches busybox httpd in the guest
    const res = await fetch(`http://127.0.0.1:${h.ports[0]!.hostPort}/index.html`);
    assert.equal(await res.text(), 'hello from the guest\n');

    await h.signal('SIGTERM');
    const exit = await withTimeout(h.waitExit(), 60_000, 'exit after SIGTERM');
    assert.deepEqual([exit.reason, exit.exitCode, exit.signal, exit.oomKilled], ['exited', 42, null, false]);
    assert.ok(logs.text('stdout').includes('got-term'));
    assert.equal(procStartTime(h.pid), undefined, 'qemu is gone after the app exits');
    assert.equal((await h.status()).state, 'stopped');
    await assert.rejects(h.exec(['true']), /not running|stopped/);
    await h.dispose();

    const secret = `tok-${process.pid}-${Date.now()}`;
    const assertNoSecretOnDisk = (d: string) => {
      for (const f of readdirSync(d)) {
        const p = join(d, f);
        if (statSync(p).isFile()) assert.ok(!readFileSync(p).includes(secret), `${f} must not hold the secret`);
      }
    };
    // Restart of the same machine: fresh writable layer, root user, init.exec
    // overrides a broken image entrypoint; the host kills it.
    const h2 = await startVm({
      id: 'boot-a', stateDir, rootfs,
      run: {
        image: { entrypoint: ['/bin/false'], cmd: ['x'] },
        init: { exec: ['/bin/sh', '-c', 'test -e /persist-test && echo PRESENT || echo ABSENT; id -u; trap "" TERM; echo ready; while :; do sleep 0.2; done'] },
        secrets: { TOKEN: secret },
      },
    });
    const logs2 = collectLogs(h2);
    await logs2.waitFor((l) => l.line === 'ready');
    assert.equal((await h2.exec(['sh', '-c', 'echo $TOKEN; ls /hangar 2>&1'])).stdout.split('\n')[0], secret, 'the secret reaches the app');
    assertNoSecretOnDisk(stateDir);
    assert.deepEqual(logs2.text('stdout').slice(0, 2), ['ABSENT', '0']);
    // SIGTERM is trapped: the app keeps running until the host kills the VM
    await h2.signal('SIGTERM');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await h2.status()).state, 'running');
    const killed = await h2.kill();
    assert.deepEqual([killed.reason, killed.exitCode, killed.signal], ['killed', 137, 9]);
    assert.equal(procStartTime(h2.pid), undefined);
    assertNoSecretOnDisk(stateDir);
    // the writable layer was a qemu snapshot overlay: nothing of it is left
    assert.deepEqual(readdirSync(stateDir).sort(), ['console.log', 'ctl.sock', 'exit.json', 'logs.rec', 'qemu.stderr', 'qmp.sock', 'vm.json']);
    await h2.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('qemu failing to start gives an error carrying qemu\'s own message', { timeout: 60_000 }, async () => {
  findGuestArtifacts();
  const dir = tempDir();
  try {
    const rootfs = join(dir, 'root.img');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(rootfs, Buffer.alloc(4096));
    const notAnImage = join(dir, 'adir');
    mkdirSync(notAnImage);
    await assert.rejects(
      startVm({ id: 'bad', stateDir: join(dir, 'vm'), rootfs, run: { image: { cmd: ['/bin/true'] } }, volumes: [{ hostPath: notAnImage, guestPath: '/data' }] }),
      (e: Error & { code?: string }) => e.code === 'VM_START_FAILED' && /qemu did not start/.test(e.message) && /adir/.test(e.message),
    );
    await assert.rejects(
      startVm({ id: 'bad2', stateDir: join(dir, 'vm2'), rootfs: join(dir, 'missing.erofs'), run: { image: { cmd: ['/bin/true'] } } }),
      /does not exist/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
test('boot failures end the VM with the reason: a guest that never starts the app is killed; a kernel panic is reported with the console', { timeout: 300_000 }, async () => {
  findGuestArtifacts();
  const dir = tempDir();
  try {
    const rootfs = await makeRootfs(dir, 'bb');
    const slow = await startVm({ id: 'slow', stateDir: join(dir, 'slow'), rootfs, bootTimeoutMs: 1500, run: { image: { cmd: ['/bin/true'] } } });
    const e1 = await withTimeout(slow.waitExit(), 30_000, 'boot timeout');
    assert.equal(e1.reason, 'crashed');
    assert.match(e1.message, /did not start the app within 2 s/);
    await slow.dispose();

    const panic = await startVm({ id: 'panic', stateDir: join(dir, 'panic'), rootfs, kernelArgs: ['rdinit=/no-such-init'], run: { image: { cmd: ['/bin/true'] } } });
    await assert.rejects(panic.waitStarted(), /stopped before the app started/);
    const e2 = await withTimeout(panic.waitExit(), BOOT_TIMEOUT_MS, 'panic exit');
    assert.equal(e2.reason, 'crashed');
    assert.equal(e2.exitCode, null);
    assert.match(e2.message, /Kernel panic/);
    await panic.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
