import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cvss2BaseScore, cvss3BaseScore, osvSeverity, parseSeverity } from '../../src/vulns/index.js';

test('CVSS v3 base scores match NVD for known vectors', () => {
  const known: Array<[string, number]> = [
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 9.8], // e.g. CVE-2017-5638
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H', 10.0], // CVE-2021-44228 (Log4Shell)
    ['CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H', 7.8], // CVE-2021-4034 (PwnKit)
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N', 7.5], // CVE-2014-0160 (Heartbleed)
    ['CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N', 5.9],
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N', 6.1], // the usual reflected XSS
    ['CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N', 6.4], // the usual stored XSS
    ['CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H', 7.8], // CVE-2023-45133 (Babel)
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L', 5.3],
    ['CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N', 1.6],
    ['CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 9.8],
    ['CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N', 0],
  ];
  for (const [v, score] of known) assert.equal(cvss3BaseScore(v), score, v);
  for (const bad of ['CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 'CVSS:3.1/AV:N', 'AV:N/AC:L/Au:N/C:P/I:P/A:P', 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N']) {
    assert.equal(cvss3BaseScore(bad), undefined, bad);
  }
});

test('CVSS v2 base scores match NVD for known vectors', () => {
  assert.equal(cvss2BaseScore('AV:N/AC:L/Au:N/C:P/I:P/A:P'), 7.5);
  assert.equal(cvss2BaseScore('AV:N/AC:M/Au:N/C:N/I:P/A:N'), 4.3);
  assert.equal(cvss2BaseScore('AV:L/AC:L/Au:N/C:C/I:C/A:C'), 7.2);
  assert.equal(cvss2BaseScore('AV:N/AC:L/Au:N/C:N/I:N/A:N'), 0);
  assert.equal(cvss2BaseScore('AV:Q/AC:L/Au:N/C:N/I:N/A:N'), undefined);
});

test('OSV severity precedence: label, then CVSS, then the affected entry, then UNKNOWN', () => {
  const v3 = (s: string) => [{ type: 'CVSS_V3', score: s }];
  assert.deepEqual(osvSeverity({ database_specific: { severity: 'MODERATE' }, severity: v3('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H') }), { severity: 'MEDIUM', score: 9.8 });
  assert.deepEqual(osvSeverity({ severity: [...v3('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L'), ...v3('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H')] }), { severity: 'CRITICAL', score: 9.8 });
  assert.deepEqual(osvSeverity({ severity: [{ type: 'CVSS_V2', score: 'AV:N/AC:L/Au:N/C:P/I:P/A:P' }] }), { severity: 'HIGH', score: 7.5 });
  assert.deepEqual(osvSeverity({}, { ecosystem_specific: { urgency: 'unimportant' } }), { severity: 'LOW' });
  assert.deepEqual(osvSeverity({}, { database_specific: { severity: 'high' } }), { severity: 'HIGH' });
  assert.deepEqual(osvSeverity({ severity: [{ type: 'Ubuntu', score: 'medium' }] }), { severity: 'MEDIUM' });
  assert.deepEqual(osvSeverity({ severity: [{ type: 'CVSS_V4', score: 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N' }] }), { severity: 'UNKNOWN' });
  assert.deepEqual(osvSeverity({}, { ecosystem_specific: { urgency: 'not yet assigned' } }), { severity: 'UNKNOWN' });
  assert.equal(parseSeverity('Moderate'), 'MEDIUM');
  assert.throws(() => parseSeverity('urgent'), /unknown severity "urgent"/);
});
