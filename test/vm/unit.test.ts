import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/shared/process.js';
import { RecordDecoder, encodeRecords, MessageDecoder, field } from '../../src/vm/records.js';
import { compileRunConfig, configCpio, resolveCommand, resolveEnv } from '../../src/vm/runconfig.js';
import { parseUsernet, signalNumber } from '../../src/vm/index.js';
import { tempDir } from './fixtures.js';

test('records round-trip binary values split across chunks, with offsets', () => {
  const bin = Buffer.from([0, 10, 255, 32, 10]);
  const enc = encodeRecords([['o', 'hello'], ['e', bin], ['x', '']]);
  const dec = new RecordDecoder();
  const got = [...dec.push(enc.subarray(0, 7)), ...dec.push(enc.subarray(7, 13)), ...dec.push(enc.subarray(13))];
  assert.deepEqual(got.map((r) => r.key), ['o', 'e', 'x']);
  assert.deepEqual(got[1]!.value, bin);
  assert.equal(got[2]!.end, enc.length);
  assert.equal(dec.corrupt, false);
  const bad = new RecordDecoder();
  bad.push(Buffer.from('o 3\nabcX'));
  assert.equal(bad.corrupt, true);
  const msgs = new MessageDecoder().push(encodeRecords([['id', '7'], ['ok', '1'], ['end', ''], ['ev', 'exit'], ['end', '']]));
  assert.equal(msgs.length, 2);
  assert.equal(field(msgs[0]!, 'id'), '7');
  assert.equal(field(msgs[1]!, 'ev'), 'exit');
});

test("command follows Fly's rules: exec, else entrypoint + cmd, entrypoint override drops the image cmd", () => {
  const image = { entrypoint: ['/ep'], cmd: ['a', 'b'] };
  assert.deepEqual(resolveCommand({ image }), ['/ep', 'a', 'b']);
  assert.deepEqual(resolveCommand({ image, init: { cmd: ['c'] } }), ['/ep', 'c']);
  assert.deepEqual(resolveCommand({ image, init: { entrypoint: ['/other'] } }), ['/other']);
  assert.deepEqual(resolveCommand({ image, init: { entrypoint: ['/other'], cmd: ['x'] } }), ['/other', 'x']);
  assert.deepEqual(resolveCommand({ image, init: { exec: ['/bin/true'], cmd: ['ignored'] } }), ['/bin/true']);
  assert.deepEqual(resolveCommand({ image: { cmd: ['/bin/sh'] } }), ['/bin/sh']);
});

test('environment: image Env, then machine env, then secrets; later wins', () => {
  const env = resolveEnv({ image: { env: ['PATH=/bin', 'A=image', 'B=image'] }, env: { B: 'machine', C: 'machine' }, secrets: { C: 'secret', D: 's=x' } });
  assert.deepEqual(env, ['PATH=/bin', 'A=image', 'B=machine', 'C=secret', 'D=s=x']);
});

test('run config rejects bad input and empty commands with readable errors', () => {
  const disks = { root: 'root', volumes: [] };
  assert.throws(() => compileRunConfig({ image: {} }, disks, { hostname: 'h' }), /nothing to run/);
  assert.throws(() => compileRunConfig({ image: { cmd: ['x'] }, env: { 'A=B': '1' } }, disks, { hostname: 'h' }), /env/);
  assert.throws(() => compileRunConfig({ image: { cmd: ['x'] }, files: [{ guestPath: 'rel', rawValue: '' }] }, disks, { hostname: 'h' }), /absolute/);
  assert.throws(() => compileRunConfig({ image: { cmd: ['a\0b'] } }, disks, { hostname: 'h' }), /NUL/);
});

test('the config cpio is a valid newc archive that cpio(1) lists', async () => {
  const dir = tempDir();
  try {
    const cfg = compileRunConfig({ image: { cmd: ['/bin/sh'] }, secrets: { S: 'v', LONG: 'longsecret' }, files: [{ guestPath: '/etc/x', rawValue: Buffer.from('hi').toString('base64'), mode: 0o600 }] },
      { root: 'root', scratch: 'scratch', volumes: [{ serial: 'vol0', guestPath: '/data' }] }, { hostname: 'm1' });
    const text = cfg.toString('utf8');
    // Secret values of 4+ bytes are sent for masking app output; shorter ones would mask ordinary words.
    assert.ok(text.includes('mask 10\nlongsecret\n'));
    assert.ok(!text.includes('mask 1\nv\n'));
    for (const want of ['arg 7\n/bin/sh\n', 'env 3\nS=v\n', 'file.data 2\nhi\n', 'mount.dev 4\nvol0\n', 'hostname 2\nm1\n', 'disk.scratch 7\nscratch\n']) {
      assert.ok(text.includes(want), `config should contain ${JSON.stringify(want)}`);
    }
    const p = join(dir, 'c.cpio');
    writeFileSync(p, configCpio(cfg));
    const { stdout } = await run('cpio', ['-it', '--quiet', '-F', p]);
    assert.deepEqual(stdout.trim().split('\n'), ['hangar', 'hangar/run.cfg']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('forwarded ports are read from qemu "info usernet"', () => {
  const text = 'Hub -1 (n0):\r\n  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n  TCP[HOST_FORWARD]   9       127.0.0.1 39571       10.0.2.15  8080     0     0\r\n  UDP[HOST_FORWARD]   8       127.0.0.1 44145       10.0.2.15  53     0     0\r\n';
  assert.deepEqual(parseUsernet(text), [
    { protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 39571, guestPort: 8080 },
    { protocol: 'udp', hostAddress: '127.0.0.1', hostPort: 44145, guestPort: 53 },
  ]);
});

test('signals by name or number', () => {
  assert.equal(signalNumber('SIGTERM'), 15);
  assert.equal(signalNumber('int'), 2);
  assert.equal(signalNumber(9), 9);
  assert.throws(() => signalNumber('SIGNOPE'), /unknown signal/);
  assert.throws(() => signalNumber(0), /invalid signal/);
});
