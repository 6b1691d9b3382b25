import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { hangar, type CliResult } from '../helpers/cli.js';

export interface DeployEnv {
  t: TestDaemon;
  configDir: string;
  /** Run the CLI against this daemon (admin token unless given). */
  cli(args: string[], cwd?: string, token?: string, extraEnv?: Record<string, string>): Promise<CliResult>;
  registryHost: string;
  /** Every layer blob of an image in Hangar's registry, decompressed. */
  layers(repo: string, reference: string): Buffer[];
  orgToken(org: string): Promise<string>;
  close(): Promise<void>;
}

export async function deployEnv(): Promise<DeployEnv> {
  const t = await startTestDaemon();
  const configDir = mkdtempSync(join(tmpdir(), 'hangar-cli-'));
  const registryHost = new URL(t.daemon.url).host;
  return {
    t,
    configDir,
    registryHost,
    cli: (args, cwd, token = t.adminToken, extraEnv = {}) =>
      hangar(args, { HANGAR_API_URL: t.daemon.url, HANGAR_ACCESS_TOKEN: token, HANGAR_CONFIG_DIR: configDir, HANGAR_APP: undefined, ...extraEnv }, undefined, cwd),
    layers(repo, reference) {
      const reg = t.daemon.registry;
      const m = reg.resolveManifest(repo, reference);
      if (!m) throw new Error(`${repo}:${reference} is not in the registry`);
      const manifest = JSON.parse(readFileSync(reg.blobPath(m.digest)!, 'utf8')) as { layers: Array<{ digest: string; mediaType: string }> };
      return manifest.layers.map((l) => {
        const raw = readFileSync(reg.blobPath(l.digest)!);
        return l.mediaType.endsWith('gzip') ? gunzipSync(raw) : raw;
      });
    },
    async orgToken(org) {
      const r = await t.api('POST', '/v1/tokens', { name: `${org}-token`, org_slug: org });
      if (r.status !== 201 && r.status !== 200) throw new Error(`token: ${JSON.stringify(r.body)}`);
      return r.body.token as string;
    },
    async close() {
      // buildah's overlay storage keeps a private bind mount on its overlay dir.
      for (const mp of mountsUnder(t.dataDir).reverse()) spawnSync('umount', ['-l', mp]);
      await t.close();
      rmSync(configDir, { recursive: true, force: true });
    },
  };
}

/** Names of the files in an (uncompressed) tar layer. */
export function tarNames(layer: Buffer): string[] {
  const names: string[] = [];
  let off = 0;
  while (off + 512 <= layer.length) {
    const h = layer.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const name = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const prefix = h.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim() || '0', 8);
    const type = String.fromCharCode(h[156]!);
    if (type !== 'x' && type !== 'g' && type !== 'L') names.push(prefix ? `${prefix}/${name}` : name);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return names;
}

export async function until<T>(fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

export async function httpGet(port: number, path = '/'): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: await r.text() };
}

/** A web app in Perl (perl-base is in every Debian image): VERSION and HEALTH from env. */
export const PERL_SERVER = `use strict; use IO::Socket::INET;
$| = 1;
my $v = $ENV{VERSION} // 'dev'; my $health = $ENV{HEALTH} // 200;
my $s = IO::Socket::INET->new(LocalPort => 8080, Listen => 10, ReuseAddr => 1) or die "listen: $!";
$SIG{INT} = sub { exit 0 }; $SIG{TERM} = sub { exit 0 };
print "listening version $v\\n";
while (my $c = $s->accept) {
  my $req = <$c>; my $path = (split ' ', ($req // ''))[1] // '/';
  while (my $l = <$c>) { last if $l =~ /^\\r?\\n$/ }
  my ($code, $body) = $path eq '/healthz' ? ($health, "health $health\\n") : (200, "version $v\\n");
  print $c "HTTP/1.0 $code X\\r\\nContent-Type: text/plain\\r\\nContent-Length: " . length($body) . "\\r\\nConnection: close\\r\\n\\r\\n$body";
  close $c;
}
`;

export const PERL_DOCKERFILE = `FROM debian:bookworm-slim
COPY server.pl /srv/server.pl
USER nobody
CMD ["perl", "/srv/server.pl"]
`;

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((mp) => mp.startsWith(dir + '/'));
}
