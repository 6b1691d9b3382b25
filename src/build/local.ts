import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HangarError } from '../shared/errors.js';
import { run } from '../shared/process.js';
import { MIRROR_NAMESPACE } from '../registry/mirror-prefix.js';

/**
 * `--build-local` / `--local-only`: build on this machine with its Docker
 * engine when one answers, else with local buildah, then push to Hangar's
 * registry. Base images come from Hangar's mirror either way.
 */
export interface LocalBuildOptions {
  contextDir: string;
  dockerfile: string;
  /** host:port of Hangar's registry. */
  registryHost: string;
  token: string;
  image: string;
  target?: string;
  buildArgs?: Record<string, string>;
  secrets?: Record<string, string>;
  noCache?: boolean;
  push: boolean;
  onLine: (line: string) => void;
  /** Force an engine (tests); default: docker when reachable, else buildah. */
  engine?: 'docker' | 'buildah';
}

export interface LocalBuildResult {
  engine: 'docker' | 'buildah';
  image: string;
  digest: string | null;
}

export async function dockerAvailable(): Promise<boolean> {
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return false;
  try {
    const r = await run('docker', ['version', '--format', '{{.Server.Version}}'], { allowFailure: true, timeoutMs: 5000 });
    return r.code === 0;
  } catch {
    return false;
  }
}

function stream(file: string, args: string[], env: NodeJS.ProcessEnv, onLine: (l: string) => void): Promise<{ code: number; tail: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    let buf = '';
    const feed = (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.search(/[\r\n]/)) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.trim()) continue;
        tail.push(line);
        if (tail.length > 20) tail.shift();
        onLine(line);
      }
    };
    child.stdout.on('data', feed);
    child.stderr.on('data', feed);
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(new HangarError('MISSING_TOOL', e.code === 'ENOENT' ? `${file} is not installed; install it or build remotely (drop --build-local)` : e.message)),
    );
    child.on('close', (c) => resolve({ code: c ?? 1, tail }));
  });
}

/** FROM lines naming Docker Hub images (no registry host), with stage names excluded. */
export function dockerHubBases(dockerfile: string): string[] {
  const stages = new Set<string>();
  const out: string[] = [];
  for (const m of dockerfile.matchAll(/^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?/gim)) {
    const ref = m[1]!;
    if (m[2]) stages.add(m[2].toLowerCase());
    if (stages.has(ref.toLowerCase()) && !m[2]) continue;
    if (ref === 'scratch' || ref.includes('$') || stages.has(ref.toLowerCase())) continue;
    const first = ref.split('/')[0]!;
    if (ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) continue;
    if (!out.includes(ref)) out.push(ref);
  }
  return out;
}

export async function localBuild(o: LocalBuildOptions): Promise<LocalBuildResult> {
  const engine = o.engine ?? ((await dockerAvailable()) ? 'docker' : 'buildah');
  const work = mkdtempSync(join(tmpdir(), 'hangar-local-build-'));
  try {
    const auth = Buffer.from(`hangar:${o.token}`).toString('base64');
    writeFileSync(join(work, 'config.json'), JSON.stringify({ auths: { [o.registryHost]: { auth } } }), { mode: 0o600 });
    const secretArgs: string[] = [];
    for (const [id, v] of Object.entries(o.secrets ?? {})) {
      const f = join(work, `secret-${id}`);
      writeFileSync(f, v, { mode: 0o600 });
      secretArgs.push('--secret', `id=${id},src=${f}`);
    }
    const common = [
      '-f', join(o.contextDir, o.dockerfile),
      ...(o.target ? ['--target', o.target] : []),
      ...Object.entries(o.buildArgs ?? {}).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]),
      ...secretArgs,
      ...(o.noCache ? ['--no-cache'] : []),
      '-t', o.image,
    ];
    if (engine === 'docker') {
      // BuildKit (needed for --build-secret) comes with the buildx plugin; without it, the classic builder.
      const buildkit = (await run('docker', ['buildx', 'version'], { allowFailure: true })).code === 0;
      if (!buildkit && Object.keys(o.secrets ?? {}).length) throw new HangarError('USAGE', '--build-secret with --build-local needs Docker BuildKit (the buildx plugin); install it, or build remotely');
      const env = { ...process.env, DOCKER_BUILDKIT: buildkit ? '1' : '0' };
      const authEnv = { ...env, DOCKER_CONFIG: work };
      // Docker Hub bases the engine lacks come from Hangar's mirror, re-tagged under their usual names.
      for (const base of dockerHubBases(readFileSync(join(o.contextDir, o.dockerfile), 'utf8'))) {
        if ((await run('docker', ['image', 'inspect', base], { allowFailure: true })).code === 0) continue;
        const path = base.includes('/') ? base : `library/${base}`;
        const mirrored = `${o.registryHost}/${MIRROR_NAMESPACE}/${path.includes(':') || path.includes('@') ? path : `${path}:latest`}`;
        o.onLine(`pulling ${base} from Hangar's mirror (${mirrored})`);
        const p = await stream('docker', ['pull', mirrored], authEnv, o.onLine);
        if (p.code === 0) await run('docker', ['tag', mirrored, base]);
      }
      const b = await stream('docker', ['build', '--network', 'host', ...common, o.contextDir], env, o.onLine);
      if (b.code !== 0) throw new HangarError('BUILD_FAILED', `docker build failed (exit ${b.code}); nothing was pushed or deployed. Last output:\n${b.tail.slice(-10).join('\n')}`, { status: 422 });
      if (!o.push) return { engine, image: o.image, digest: null };
      const p = await stream('docker', ['push', o.image], authEnv, o.onLine);
      if (p.code !== 0) throw new HangarError('PUSH_FAILED', `docker push ${o.image} failed: ${p.tail.slice(-3).join(' | ')}`, { status: 502 });
      const digest = /digest: (sha256:[a-f0-9]{64})/.exec(p.tail.join('\n'))?.[1] ?? null;
      return { engine, image: o.image, digest };
    }
    const conf = join(work, 'registries.conf');
    writeFileSync(
      conf,
      `unqualified-search-registries = ["docker.io"]\nshort-name-mode = "permissive"\n[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n[[registry.mirror]]\nlocation = "${o.registryHost}/${MIRROR_NAMESPACE}"\ninsecure = true\n[[registry]]\nlocation = "${o.registryHost}"\ninsecure = true\n`,
    );
    const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: conf, REGISTRY_AUTH_FILE: join(work, 'config.json') };
    const b = await stream('buildah', ['bud', '--isolation', 'chroot', '--layers', ...common, o.contextDir], env, o.onLine);
    if (b.code !== 0) throw new HangarError('BUILD_FAILED', `buildah build failed (exit ${b.code}); nothing was pushed or deployed. Last output:\n${b.tail.slice(-10).join('\n')}`, { status: 422 });
    if (!o.push) return { engine, image: o.image, digest: null };
    const df = join(work, 'digest');
    const p = await stream('buildah', ['push', '--tls-verify=false', '--digestfile', df, o.image, `docker://${o.image}`], env, o.onLine);
    if (p.code !== 0) throw new HangarError('PUSH_FAILED', `buildah push ${o.image} failed: ${p.tail.slice(-3).join(' | ')}`, { status: 502 });
    return { engine, image: o.image, digest: readFileSync(df, 'utf8').trim() };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
