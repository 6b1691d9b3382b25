/**
 * Test helper: a small OSV data set written here, shaped like the real
 * ecosystem exports (Debian, Alpine, npm, PyPI). Ids with 2099 are made up;
 * the GHSA/PYSEC ids are real advisories with their real fixed versions.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

type Rec = Record<string, unknown>;

const eco = (ecosystem: string, name: string, events: Rec[], extra: Rec = {}, type = 'ECOSYSTEM') => ({
  package: { ecosystem, name },
  ranges: [{ type, events }],
  ...extra,
});

const M = '2024-01-01T00:00:00Z';

export const RECORDS: Rec[] = [
  // --- Debian 12 (keyed by source package) ---
  { id: 'DEBIAN-CVE-2023-5678', modified: M, upstream: ['CVE-2023-5678'], summary: 'openssl: excessive time in DH key checks', affected: [eco('Debian:12', 'openssl', [{ introduced: '0' }, { fixed: '3.0.13-1~deb12u1' }])] },
  { id: 'CVE-2023-5678', modified: M, summary: 'upstream record carrying the CVSS rating', severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L' }] },
  { id: 'DSA-5532-1', modified: M, summary: 'openssl: fixed in exactly the installed version', affected: [eco('Debian:12', 'openssl', [{ introduced: '0' }, { fixed: '3.0.11-1~deb12u1' }])] },
  {
    id: 'DEBIAN-CVE-2099-0001',
    modified: M,
    summary: 'openssl: fixed in 3.0.11-1, which sorts above 3.0.11-1~deb12u1',
    affected: [eco('Debian:12', 'openssl', [{ introduced: '0' }, { fixed: '3.0.11-1' }], { ecosystem_specific: { urgency: 'high' } })],
  },
  {
    id: 'DEBIAN-CVE-2099-0005',
    modified: M,
    summary: 'openssl: two ranges, the lowest fix above the installed version is reported',
    affected: [
      {
        package: { ecosystem: 'Debian:12', name: 'openssl' },
        ranges: [
          { type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '3.0.14-1' }] },
          { type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '3.0.12-1' }] },
        ],
      },
    ],
  },
  { id: 'DEBIAN-CVE-2099-0010', modified: M, summary: 'openssl in Debian 11 only', affected: [eco('Debian:11', 'openssl', [{ introduced: '0' }])] },
  { id: 'DEBIAN-CVE-2099-0011', modified: M, withdrawn: '2024-02-01T00:00:00Z', summary: 'withdrawn', affected: [eco('Debian:12', 'openssl', [{ introduced: '0' }])] },
  { id: 'DEBIAN-CVE-2099-0002', modified: M, summary: 'zlib: fixed in the installed version (with epoch)', affected: [eco('Debian:12', 'zlib', [{ introduced: '0' }, { fixed: '1:1.2.13.dfsg-1' }])] },
  { id: 'DEBIAN-CVE-2099-0003', modified: M, summary: 'zlib: fixed later', affected: [eco('Debian:12', 'zlib', [{ introduced: '0' }, { fixed: '1:1.3.dfsg-3' }])] },
  { id: 'DEBIAN-CVE-2099-0012', modified: M, summary: 'zlib: fix without epoch sorts below any epoch 1 version', affected: [eco('Debian:12', 'zlib', [{ introduced: '0' }, { fixed: '1.4-1' }])] },
  {
    id: 'DEBIAN-CVE-2099-0004',
    modified: M,
    summary: 'bash: no fix yet',
    severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H' }],
    affected: [eco('Debian:12', 'bash', [{ introduced: '0' }])],
  },
  { id: 'DEBIAN-CVE-2099-0006', modified: M, summary: 'tzdata: last_affected is the installed version', affected: [eco('Debian:12', 'tzdata', [{ introduced: '0' }, { last_affected: '2024a-0+deb12u1' }])] },
  { id: 'DEBIAN-CVE-2099-0007', modified: M, summary: 'tzdata: last_affected below the installed version', affected: [eco('Debian:12', 'tzdata', [{ introduced: '0' }, { last_affected: '2023c-5' }])] },
  { id: 'DEBIAN-CVE-2099-0008', modified: M, summary: 'libssl3 is a binary package; feeds name the source package', affected: [eco('Debian:12', 'libssl3', [{ introduced: '0' }])] },

  // --- Alpine 3.19 (keyed by origin package) ---
  { id: 'ALPINE-CVE-2099-0001', modified: M, summary: 'openssl (libcrypto3)', affected: [eco('Alpine:v3.19', 'openssl', [{ introduced: '0' }, { fixed: '3.1.4-r5' }])] },
  { id: 'ALPINE-CVE-2099-0002', modified: M, summary: 'busybox fixed in installed -r15', affected: [eco('Alpine:v3.19', 'busybox', [{ introduced: '0' }, { fixed: '1.36.1-r15' }])] },
  { id: 'ALPINE-CVE-2099-0003', modified: M, summary: 'musl git snapshot', affected: [eco('Alpine:v3.19', 'musl', [{ introduced: '0' }, { fixed: '1.2.4_git20230717-r5' }])] },
  { id: 'ALPINE-CVE-2099-0004', modified: M, summary: 'musl in 3.18 only', affected: [eco('Alpine:v3.18', 'musl', [{ introduced: '0' }])] },

  // --- npm ---
  {
    id: 'GHSA-35jh-r3h4-6jhm',
    modified: M,
    aliases: ['CVE-2021-23337'],
    summary: 'Command Injection in lodash',
    database_specific: { severity: 'HIGH' },
    affected: [eco('npm', 'lodash', [{ introduced: '0' }, { fixed: '4.17.21' }], {}, 'SEMVER')],
  },
  {
    id: 'GHSA-p6mc-m468-83gw',
    modified: M,
    aliases: ['CVE-2020-8203'],
    summary: 'Prototype Pollution in lodash',
    database_specific: { severity: 'HIGH' },
    affected: [eco('npm', 'lodash', [{ introduced: '3.7.0' }, { fixed: '4.17.19' }], {}, 'SEMVER')],
  },
  {
    id: 'GHSA-xvch-5gv4-984h',
    modified: M,
    aliases: ['CVE-2021-44906'],
    summary: 'Prototype Pollution in minimist',
    database_specific: { severity: 'CRITICAL' },
    affected: [
      {
        package: { ecosystem: 'npm', name: 'minimist' },
        ranges: [
          { type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '0.2.4' }] },
          { type: 'SEMVER', events: [{ introduced: '1.0.0' }, { fixed: '1.2.6' }] },
        ],
      },
    ],
  },
  {
    id: 'GHSA-67hx-6x53-jw92',
    modified: M,
    aliases: ['CVE-2023-45133'],
    summary: 'Babel vulnerable to arbitrary code execution when compiling specifically crafted malicious code',
    severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H' }],
    database_specific: { severity: 'CRITICAL' },
    affected: [eco('npm', '@babel/traverse', [{ introduced: '0' }, { fixed: '7.23.2' }], {}, 'SEMVER')],
  },
  { id: 'GHSA-2099-pre0-rel0', modified: M, summary: 'only 7.22.0 pre-releases', database_specific: { severity: 'LOW' }, affected: [eco('npm', '@babel/traverse', [{ introduced: '7.22.0-rc.1' }, { fixed: '7.22.0' }], {}, 'SEMVER')] },
  { id: 'GHSA-qw6h-vgh9-j6wx', modified: M, summary: 'express fixed in the installed version', database_specific: { severity: 'MODERATE' }, affected: [eco('npm', 'express', [{ introduced: '0' }, { fixed: '4.19.2' }], {}, 'SEMVER')] },
  { id: 'GHSA-2099-vers-list', modified: M, summary: 'debug: explicit versions list', database_specific: { severity: 'MODERATE' }, affected: [{ package: { ecosystem: 'npm', name: 'debug' }, versions: ['2.6.8', '2.6.9'] }] },

  // --- PyPI ---
  { id: 'PYSEC-2023-74', modified: M, aliases: ['CVE-2023-32681', 'GHSA-j8r2-6x86-q33q'], summary: 'requests leaks Proxy-Authorization headers', affected: [eco('PyPI', 'requests', [{ introduced: '0' }, { fixed: '2.31.0' }])] },
  {
    id: 'PYSEC-2021-142',
    modified: M,
    aliases: ['CVE-2020-14343'],
    summary: 'PyYAML arbitrary code execution',
    severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
    affected: [eco('PyPI', 'PyYAML', [{ introduced: '0' }, { fixed: '5.4' }])],
  },
  { id: 'PYSEC-2099-0001', modified: M, summary: 'pyyaml fixed in a pre-release of the installed version', affected: [eco('PyPI', 'pyyaml', [{ introduced: '0' }, { fixed: '5.3.1rc1' }])] },
];

/** Write the records as one OSV JSON file each, grouped by ecosystem like the OSV bucket. */
export async function writeOsvDir(dir: string, records: Rec[] = RECORDS): Promise<string> {
  for (const r of records) {
    const affected = (r.affected as Array<{ package: { ecosystem: string } }> | undefined) ?? [];
    const group = affected[0]?.package.ecosystem.split(':')[0] ?? 'upstream';
    await mkdir(join(dir, group), { recursive: true });
    await writeFile(join(dir, group, `${r.id as string}.json`), JSON.stringify(r, null, 1));
  }
  return dir;
}
