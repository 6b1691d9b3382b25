import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { run } from '../../src/shared/process.js';
import { compareApk, compareDebian, comparePep440, compareRpm, compareSemver, compareVersions } from '../../src/vulns/index.js';

const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);

/** Deterministic pseudo-random pairs so failures reproduce. */
function pairs<T>(list: T[], n: number): Array<[T, T]> {
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  return Array.from({ length: n }, () => [list[Math.floor(rnd() * list.length)]!, list[Math.floor(rnd() * list.length)]!]);
}

const DEBIAN = [
  '1.0', '1.0-1', '1.0-0', '1.0~rc1', '1.0~rc1-1', '1.0~~', '1.0~', '1.0~~a', '1.0+1', '1.0.1', '1.0a', '1.0-1ubuntu1', '1:0.9', '0:1.0', '2:1.0',
  '1.0-1~bpo11+1', '1.0-1+deb12u1', '1.0-1+b1', '1.00', '1.0-10', '1.0-9', '3.0.11-1~deb12u1', '3.0.11-1', '3.0.11-1~deb12u2', '3.0.13-1~deb12u1',
  '1.2.13.dfsg-1', '1:1.2.13.dfsg-1', '1:1.3.dfsg-3', '7.88.1-10+deb12u5', '2024a-0+deb12u1', '1.0+dfsg', '1.0.0', '10', '9', '1.0-a', '1.0-A',
  '1.0-1.1', '1.0-1.a', '1.0-1~', '1.0-1-1', '1:1.0:1', '5.2.15-2+b2', '5.2.15-2', '0.0', '0', '1.0-1+', '1.0-1.', '1.0+~', '1.0.~', '1.0a~', '1.0A',
];

async function dpkg(a: string, op: string, b: string): Promise<boolean> {
  return (await run('dpkg', ['--compare-versions', a, op, b], { allowFailure: true })).code === 0;
}

test('Debian ordering agrees with dpkg --compare-versions (sorted neighbours and random pairs)', async () => {
  const sorted = [...DEBIAN].sort(compareDebian);
  const checks: Array<Promise<void>> = [];
  for (let i = 0; i + 1 < sorted.length; i++) {
    const [a, b] = [sorted[i]!, sorted[i + 1]!];
    const ours = compareDebian(a, b);
    checks.push(dpkg(a, ours === 0 ? 'eq' : 'lt', b).then((ok) => assert.ok(ok, `dpkg disagrees: ${a} ${ours === 0 ? '=' : '<'} ${b}`)));
  }
  for (const [a, b] of pairs(DEBIAN, 60)) {
    const ours = sign(compareDebian(a, b));
    checks.push(dpkg(a, ours < 0 ? 'lt' : ours > 0 ? 'gt' : 'eq', b).then((ok) => assert.ok(ok, `dpkg disagrees: ${a} vs ${b} = ${ours}`)));
  }
  await Promise.all(checks);
  assert.equal(compareDebian('1.0', '0:1.0'), 0);
  assert.equal(compareDebian('1.0~rc1', '1.0'), -1);
  assert.throws(() => compareVersions('Debian:12', 'abc', '1.0'), /invalid Debian version "abc"/);
});

test('Alpine apk ordering table', () => {
  const ascending = [
    '0.1', '1.01', '1.1', '1.1.0', '1.2_alpha', '1.2_alpha1', '1.2_beta1', '1.2_pre1', '1.2_rc1', '1.2_rc2', '1.2', '1.2-r0', '1.2-r1', '1.2-r9', '1.2-r10',
    '1.2_cvs', '1.2_svn', '1.2_git20230101', '1.2_git20230101-r1', '1.2_hg', '1.2_p1', '1.2_p1-r3', '1.2_p2', '1.2a', '1.2b', '1.2.1', '1.10',
  ];
  for (let i = 0; i < ascending.length; i++) {
    for (let j = 0; j < ascending.length; j++) {
      assert.equal(sign(compareApk(ascending[i]!, ascending[j]!)), sign(i - j), `${ascending[i]} vs ${ascending[j]}`);
    }
  }
  assert.equal(compareApk('1.2.4_git20230717-r4', '1.2.4-r4'), 1);
  assert.equal(compareApk('3.1.4-r1', '3.1.4-r5'), -1);
  for (const bad of ['abc', '1.2-x1', '1.2_foo', '']) assert.throws(() => compareApk(bad, '1.0'), /invalid Alpine version/);
});

test('semver ordering agrees with the semver package on every pair', () => {
  const require = createRequire(import.meta.url);
  const semver = require('semver') as { compare(a: string, b: string): number };
  const list = [
    '0.0.0', '0.0.1', '0.1.0', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0',
    '1.0.0+build.5', '1.0.1', '1.2.3-0', '1.2.3-1', '1.2.3-10', '1.2.3-9', '1.2.3-a', '1.2.3-A', '1.2.3-a-b', '1.2.3', '1.10.0', '1.9.0', '10.0.0', '2.0.0-rc.1+x',
    '7.22.0-rc.1', '7.22.0', '7.23.2', '4.17.20', '4.17.21',
  ];
  for (const a of list) for (const b of list) assert.equal(sign(compareSemver(a, b)), semver.compare(a, b), `${a} vs ${b}`);
  assert.throws(() => compareSemver('1.2', '1.2.0'), /invalid semver version "1.2"/);
});

test('PEP 440 ordering agrees with python packaging on every pair', async () => {
  const list = [
    '1.0.dev0', '1.0a1.dev1', '1.0a1', '1.0alpha2', '1.0a2', '1.0b1', '1.0beta2', '1.0c1', '1.0rc1', '1.0.PRE2', '1.0', '1.0.0', '1.0+local', '1.0+local.1',
    '1.0+local.abc', '1.0+1', '1.0+1.2', '1.0.post1.dev1', '1.0.post1', '1.0-1', '1.0rev2', '1.0.post2', '1!0.5', '0!2.0', '2.0', '1.1', '1.10', 'v1.2',
    '1.0-dev', '1.0.post', '1.0_a_1', '5.3.1', '5.3.1rc1', '5.4', '2.25.0', '2.31.0', '1.0.dev1', '1.0a1.post1', '1.0a1.post1.dev2',
  ];
  const py = `import json,sys
from packaging.version import Version
vs=json.load(sys.stdin)
print(json.dumps([[ (Version(a)>Version(b))-(Version(a)<Version(b)) for b in vs] for a in vs]))`;
  let out: string | undefined;
  for (const python of ['/usr/bin/python3', 'python3']) {
    const r = await run(python, ['-c', py], { input: JSON.stringify(list), allowFailure: true }).catch(() => undefined);
    if (r?.code === 0) {
      out = r.stdout;
      break;
    }
  }
  assert.ok(out, 'python3 with the packaging module is required (scripts/setup.sh installs python3-packaging)');
  const matrix = JSON.parse(out) as number[][];
  for (let i = 0; i < list.length; i++) {
    for (let j = 0; j < list.length; j++) assert.equal(sign(comparePep440(list[i]!, list[j]!)), matrix[i]![j], `${list[i]} vs ${list[j]}`);
  }
  assert.throws(() => comparePep440('not.a.version!', '1.0'), /invalid PEP 440 version/);
});

test('rpm ordering agrees with rpm.vercmp on every pair', async () => {
  const list = [
    '1.0', '1.0.1', '1.0a', '1.0~rc1', '1.0^git1', '1.0~rc1^x', '2', '10', '1.05', '1.5', '1.0_1', 'a', 'b', '1.el9', '1.el9_2', '1.el10', '1:1.0-1', '1.0-1',
    '1.0-2', '2:0.1-1', '0:1.0-1', '3.0.7-24.el9', '3.0.7-27.el9', '3.0.7-24.el9_3', '1.0-1.fc39', 'A', '1..0', '1.0~~',
  ];
  const lua = `%{lua: local l={${list.map((v) => JSON.stringify(v)).join(',')}}; local o={}; for i=1,#l do for j=1,#l do o[#o+1]=rpm.vercmp(l[i],l[j]) end end; print(table.concat(o,","))}`;
  const r = await run('rpm', ['--eval', lua]);
  const got = r.stdout.trim().split(',').map(Number);
  assert.equal(got.length, list.length * list.length);
  let k = 0;
  for (const a of list) for (const b of list) assert.equal(sign(compareRpm(a, b)), got[k++], `${a} vs ${b}`);
});
