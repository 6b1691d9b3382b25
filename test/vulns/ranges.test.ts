import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateAffected, inRange, schemeForEcosystem } from '../../src/vulns/index.js';

const semver = schemeForEcosystem('npm')!;
const deb = schemeForEcosystem('Debian:12')!;
const range = (events: Array<Record<string, string>>, type = 'SEMVER') => ({ type, events });

test('OSV range events: introduced/fixed/last_affected/limit, unsorted events, several intervals', () => {
  const r = range([{ fixed: '1.2.6' }, { introduced: '1.0.0' }, { fixed: '0.2.4' }, { introduced: '0' }]);
  const cases: Array<[string, boolean]> = [
    ['0.0.1', true], ['0.2.3', true], ['0.2.4', false], ['0.9.9', false], ['1.0.0', true], ['1.2.5', true], ['1.2.6-rc.1', true], ['1.2.6', false], ['2.0.0', false],
  ];
  for (const [v, want] of cases) assert.equal(inRange(semver, v, r), want, v);

  const last = range([{ introduced: '2.0.0' }, { last_affected: '2.3.0' }]);
  assert.deepEqual(['1.9.9', '2.0.0', '2.3.0', '2.3.1'].map((v) => inRange(semver, v, last)), [false, true, true, false]);

  const limited = range([{ introduced: '0' }, { limit: '3.0.0' }]);
  assert.deepEqual(['2.9.9', '3.0.0', '4.0.0'].map((v) => inRange(semver, v, limited)), [true, false, false]);
  assert.equal(inRange(semver, '9.9.9', range([{ introduced: '0' }, { limit: '*' }])), true);

  const tilde = range([{ introduced: '0' }, { fixed: '2.0-1' }], 'ECOSYSTEM');
  assert.deepEqual(['2.0~rc1-1', '2.0-1~bpo11+1', '2.0-1', '2.0-1+b1'].map((v) => inRange(deb, v, tilde)), [true, true, false, false]);
});

test('evaluateAffected: versions lists, lowest fix above the installed version, GIT ranges ignored', () => {
  const row = {
    versions: ['1.0.0', '1.0.1'],
    ranges: [
      { type: 'GIT', events: [{ introduced: '0' }, { fixed: 'abc123' }] },
      { type: 'SEMVER', events: [{ introduced: '1.1.0' }, { fixed: '1.4.0' }, { introduced: '2.0.0' }, { fixed: '2.1.0' }] },
      { type: 'SEMVER', events: [{ introduced: '1.1.0' }, { fixed: '1.3.0' }] },
    ],
  };
  assert.deepEqual(evaluateAffected(semver, '1.0.1', row), { affected: true, fixed: null });
  assert.deepEqual(evaluateAffected(semver, '1.0.2', row), { affected: false, fixed: null });
  assert.deepEqual(evaluateAffected(semver, '1.2.0', row), { affected: true, fixed: '1.3.0' });
  assert.deepEqual(evaluateAffected(semver, '1.3.5', row), { affected: true, fixed: '1.4.0' });
  assert.deepEqual(evaluateAffected(semver, '2.0.5', row), { affected: true, fixed: '2.1.0' });
  assert.deepEqual(evaluateAffected(semver, '2.1.0', row), { affected: false, fixed: null });
});
