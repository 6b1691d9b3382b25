import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from '../command.js';
import { appOption, resolveApp } from '../app-flag.js';
import { HangarError } from '../../shared/errors.js';
import { formatFindings } from '../../vulns/report.js';
import { parseSeverity, severityRank, SEVERITIES, type Severity } from '../../vulns/severity.js';
import type { Finding } from '../../vulns/match.js';

/** Exit status of `registry vulns --fail-on` when a finding reaches the level (1 and 2 are errors and usage). */
export const FAIL_ON_EXIT = 3;

interface VulnsView {
  app: string;
  image: string;
  digest: string;
  packages: number;
  severity: Severity | null;
  findings: Finding[];
  total: number;
  counts: Record<Severity, number>;
  warnings: string[];
}

interface ImportView {
  source: string;
  records: number;
  withdrawn: number;
  skipped: number;
  problems: string[];
  imported_ecosystems: string[];
  advisories: number;
  ecosystems: string[];
}

interface StatusView {
  advisories: number;
  ecosystems: string[];
  last_import: { source: string; imported_at: string; records: number } | null;
}

const enc = encodeURIComponent;

function level(flags: Record<string, unknown>, name: string): Severity | undefined {
  const v = flags[name];
  if (typeof v !== 'string') return undefined;
  try {
    return parseSeverity(v);
  } catch {
    throw new HangarError('USAGE', `--${name} takes one of ${SEVERITIES.join(', ')} (case does not matter), got "${v}"`);
  }
}

export const sbomCommands: Command[] = [
  {
    path: ['registry', 'sbom'],
    summary: "List the packages in an app's image as an SPDX 2.3 or CycloneDX 1.5 JSON SBOM",
    usage: 'registry sbom -a APP [--image REF] [--format spdx|cyclonedx] [-o FILE]',
    options: { ...appOption, image: { type: 'string' }, format: { type: 'string' }, output: { type: 'string', short: 'o' } },
    async run({ flags, out, api }) {
      const app = resolveApp(flags);
      const format = typeof flags.format === 'string' ? flags.format : 'spdx';
      if (!/^(spdx|spdx-json|cyclonedx|cdx|cyclonedx-json)$/i.test(format)) throw new HangarError('USAGE', `--format takes spdx or cyclonedx, got "${format}"`);
      const q = new URLSearchParams({ format });
      if (typeof flags.image === 'string') q.set('image', flags.image);
      const res = await api().raw('GET', `/v1/apps/${enc(app)}/sbom?${q}`);
      const doc = JSON.parse(await res.text()) as Record<string, unknown> & { packages?: unknown[]; components?: unknown[] };
      const text = JSON.stringify(doc, null, 2) + '\n';
      if (typeof flags.output !== 'string') {
        out.line(text.trimEnd());
        return;
      }
      const file = resolve(flags.output);
      writeFileSync(file, text);
      const digest = res.header('x-hangar-image-digest');
      // SPDX lists the image itself as a package too; CycloneDX puts it in metadata (and the OS as a component).
      const count = Array.isArray(doc.packages) ? doc.packages.length - 1 : Array.isArray(doc.components) ? doc.components.length : 0;
      out.result({ file, format: doc.spdxVersion ? 'spdx' : 'cyclonedx', digest, cached: res.header('x-hangar-sbom-cache') === 'hit' }, () =>
        out.line(`Wrote the ${doc.spdxVersion ? 'SPDX 2.3' : 'CycloneDX 1.5'} SBOM of ${app} (${digest ?? 'image'}, ${count} entries) to ${file}`),
      );
    },
  },
  {
    path: ['registry', 'vulns'],
    summary: "Known vulnerabilities in an app's image, from the local OSV database (--fail-on for CI: exit 3)",
    usage: 'registry vulns -a APP [--image REF] [--severity LEVEL] [--fail-on LEVEL] [--json]',
    options: { ...appOption, image: { type: 'string' }, severity: { type: 'string' }, 'fail-on': { type: 'string' } },
    async run({ flags, out, api }) {
      const app = resolveApp(flags);
      const min = level(flags, 'severity');
      const failOn = level(flags, 'fail-on');
      const q = new URLSearchParams();
      if (typeof flags.image === 'string') q.set('image', flags.image);
      if (min) q.set('severity', min);
      const r = await api().request<VulnsView>('GET', `/v1/apps/${enc(app)}/vulns${q.size ? `?${q}` : ''}`);
      out.result(r, () => {
        out.line(`${r.image} (${r.digest}): ${r.packages} packages`);
        out.line();
        out.line(formatFindings({ findings: r.findings, warnings: r.warnings }).trimEnd());
        if (min && r.total > r.findings.length) out.line(`(${r.total - r.findings.length} more below ${min} not shown)`);
      });
      // Decided on the unfiltered counts: --severity changes what is shown, not what fails the build.
      if (failOn && SEVERITIES.some((s) => severityRank(s) >= severityRank(failOn) && (r.counts[s] ?? 0) > 0)) {
        out.info(`Failing: findings at or above ${failOn} (--fail-on ${failOn})`);
        return FAIL_ON_EXIT;
      }
    },
  },
  {
    path: ['vulndb', 'update'],
    summary: 'Load OSV vulnerability data: a directory, an OSV .zip, a .json file or a URL (admin token)',
    usage: 'vulndb update PATH|URL [--skip-invalid]',
    options: { 'skip-invalid': { type: 'boolean' } },
    async run({ args, flags, out, api }) {
      const arg = args[0];
      if (!arg || args.length > 1) throw new HangarError('USAGE', 'give one source: hangar vulndb update PATH|URL (a directory of OSV JSON, an OSV all.zip, a .json file, or an http(s) URL)');
      // The daemon reads the path, so it must not depend on the CLI's working directory.
      const source = /^https?:\/\//i.test(arg) ? arg : resolve(arg);
      out.info(`Importing ${source}...`);
      const r = await api().request<ImportView>('POST', '/v1/vulndb', { source, ...(flags['skip-invalid'] ? { skip_invalid: true } : {}) });
      out.result(r, () => {
        out.line(`Imported ${r.records} advisories (${r.withdrawn} withdrawn, ${r.skipped} skipped) from ${r.source}`);
        for (const p of r.problems) out.warn(p);
        out.line(`The database now holds ${r.advisories} advisories for ${r.ecosystems.join(', ') || 'no ecosystem'}`);
      });
    },
  },
  {
    path: ['vulndb', 'status'],
    summary: 'What the vulnerability database holds and when it was last updated',
    usage: 'vulndb status',
    async run({ out, api }) {
      const s = await api().request<StatusView>('GET', '/v1/vulndb');
      out.result(s, () => {
        if (!s.last_import) {
          out.line('The vulnerability database is empty: load OSV data with `hangar vulndb update PATH|URL`.');
          return;
        }
        out.line(`Advisories:  ${s.advisories}`);
        out.line(`Ecosystems:  ${s.ecosystems.join(', ') || '-'}`);
        out.line(`Last update: ${s.last_import.imported_at} from ${s.last_import.source} (${s.last_import.records} records)`);
      });
    },
  },
];
