import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { createGzip } from 'node:zlib';
import { spawn } from 'node:child_process';
import type { Accounts } from '../accounts/index.js';
import type { Store } from '../store/index.js';
import { HangarError } from '../shared/errors.js';
import { MIRROR_NAMESPACE } from '../registry/mirror-prefix.js';
import { RegistryPusher } from './push.js';

/**
 * Base images without the internet. Hangar's registry serves a mirror of
 * Docker Hub under the reserved repository prefix `docker.io/` (a dot can
 * never appear in an app name, so no app can own it). The builder's
 * registries.conf points docker.io at it, so `FROM debian:bookworm-slim`
 * resolves to `<registry>/docker.io/library/debian:bookworm-slim`.
 */
export { MIRROR_NAMESPACE };
const SYSTEM_ORG = 'hangar-system';

export interface BaseImage {
  /** Repository on Docker Hub, e.g. library/debian. */
  repository: string;
  tags: string[];
  suite: string;
  /** File name in the cache dir. */
  file: string;
}

/**
 * bookworm-slim is what the mirror builds; the plain bookworm tags point at
 * the same minimal image (documented in docs/guides/docker.md).
 */
export const BASE_IMAGES: BaseImage[] = [
  { repository: 'library/debian', tags: ['bookworm-slim', '12-slim', 'stable-slim', 'bookworm', '12', 'stable', 'latest'], suite: 'bookworm', file: 'bookworm-slim.tar' },
];

export function defaultCacheDir(): string {
  if (process.env.HANGAR_CACHE_DIR) return process.env.HANGAR_CACHE_DIR;
  // dist/src/build/mirror.js → repository root
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '.cache');
}

export type Progress = (line: string) => void;

/**
 * A Debian root filesystem tarball made with mmdebstrap (variant minbase,
 * docs/man/locales left out like the slim image), cached under
 * <cacheDir>/base/. Built once; later calls return the cached file.
 */
export async function baseTarball(image: BaseImage, cacheDir: string, progress: Progress = () => {}): Promise<string> {
  const dir = join(cacheDir, 'base');
  const out = join(dir, image.file);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${randomBytes(4).toString('hex')}.tmp`;
  const mirror = process.env.HANGAR_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
  const args = [
    '--variant=minbase',
    '--format=tar',
    '--dpkgopt=path-exclude=/usr/share/man/*',
    '--dpkgopt=path-exclude=/usr/share/doc/*',
    '--dpkgopt=path-include=/usr/share/doc/*/copyright',
    '--dpkgopt=path-exclude=/usr/share/locale/*',
    '--dpkgopt=path-exclude=/usr/share/info/*',
    '--aptopt=Acquire::Languages "none"',
    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
    image.suite,
    tmp,
    mirror,
  ];
  progress(`making the ${image.repository}:${image.tags[0]} base image with mmdebstrap (${mirror}); this takes a few minutes once`);
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn('mmdebstrap', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const onLine = (d: Buffer) => d.toString().split('\n').filter(Boolean).forEach((l) => progress(`  ${l}`));
    child.stdout.on('data', onLine);
    child.stderr.on('data', onLine);
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(new HangarError('MISSING_TOOL', e.code === 'ENOENT' ? 'mmdebstrap is not installed: run scripts/setup.sh (apt-get install mmdebstrap)' : e.message, { status: 500 })),
    );
    child.on('close', (c) => resolve(c ?? 1));
  });
  if (code !== 0) {
    rmSync(tmp, { force: true });
    throw new HangarError('SEED_FAILED', `mmdebstrap failed (exit ${code}): it needs a reachable Debian mirror; set HANGAR_DEBIAN_MIRROR to one`, { status: 500 });
  }
  renameSync(tmp, out);
  return out;
}

interface LayerInfo {
  digest: string;
  diffId: string;
  size: number;
  path: string;
}

/** gzip the tarball once; digests cached next to it. */
async function layerOf(tarPath: string): Promise<LayerInfo> {
  const meta = `${tarPath}.layer.json`;
  const gz = `${tarPath}.gz`;
  if (existsSync(meta) && existsSync(gz)) return JSON.parse(readFileSync(meta, 'utf8')) as LayerInfo;
  const raw = createHash('sha256');
  const packed = createHash('sha256');
  let size = 0;
  // Two processes may seed at once (e.g. parallel test daemons sharing the
  // cache): each writes its own temp file; gzip output is deterministic, so
  // whichever rename lands last leaves the same bytes.
  const tmp = `${gz}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await pipeline(
    createReadStream(tarPath),
    new Transform({ transform(c: Buffer, _e, cb) { raw.update(c); cb(null, c); } }),
    createGzip({ level: 6 }),
    new Transform({ transform(c: Buffer, _e, cb) { packed.update(c); size += c.length; cb(null, c); } }),
    createWriteStream(tmp),
  );
  renameSync(tmp, gz);
  const info: LayerInfo = { digest: `sha256:${packed.digest('hex')}`, diffId: `sha256:${raw.digest('hex')}`, size, path: gz };
  const metaTmp = `${meta}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(metaTmp, JSON.stringify(info));
  renameSync(metaTmp, meta);
  return info;
}

/**
 * The mirror repositories belong to a system app row named `docker.io`
 * (the registry ties every repository to an app). Created directly because
 * app names with dots are refused on purpose for users.
 */
export function ensureMirrorOwner(store: Store, accounts: Accounts): void {
  if (accounts.findApp(MIRROR_NAMESPACE)) return;
  const org = accounts.findOrg(SYSTEM_ORG) ?? accounts.createOrg(SYSTEM_ORG, 'Hangar system (mirrored base images)');
  store.db
    .prepare('INSERT OR IGNORE INTO apps (id, name, org_id, created_at) VALUES (?, ?, ?, ?)')
    .run(randomBytes(7).toString('hex'), MIRROR_NAMESPACE, org.id, new Date().toISOString());
}

export interface SeedResult {
  repository: string;
  tags: string[];
  digest: string;
  pushed: boolean;
}

/**
 * Make (or reuse) the base image and push it into Hangar's registry under
 * docker.io/<repository>. `token` must be an admin token: only the admin may
 * push into the mirror namespace.
 */
export async function seedMirror(o: { registryUrl: string; token: string; cacheDir?: string; progress?: Progress; force?: boolean }): Promise<SeedResult[]> {
  const progress = o.progress ?? (() => {});
  const pusher = new RegistryPusher(o.registryUrl, o.token);
  const results: SeedResult[] = [];
  for (const image of BASE_IMAGES) {
    const repo = `${MIRROR_NAMESPACE}/${image.repository}`;
    const existing = await pusher.resolve(repo, image.tags[0]!);
    if (existing && !o.force) {
      results.push({ repository: repo, tags: image.tags, digest: existing, pushed: false });
      continue;
    }
    const tar = await baseTarball(image, o.cacheDir ?? defaultCacheDir(), progress);
    progress(`compressing and pushing ${repo}`);
    const layer = await layerOf(tar);
    // A fixed creation time keeps the config, and so the digest, stable across seeds.
    const created = '2025-05-20T00:00:00Z';
    await pusher.pushBlob(repo, layer.digest, { file: layer.path });
    const digest = await pusher.pushImage(
      repo,
      image.tags,
      {
        created,
        architecture: 'amd64',
        os: 'linux',
        config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['bash'] },
        rootfs: { type: 'layers', diff_ids: [layer.diffId] },
        history: [{ created, created_by: `mmdebstrap --variant=minbase ${image.suite} (Hangar mirror of docker.io/${image.repository})` }],
      },
      [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size }],
      { 'org.opencontainers.image.source': 'https://salsa.debian.org/debian/mmdebstrap', 'org.opencontainers.image.ref.name': `docker.io/${image.repository}` },
    );
    progress(`seeded ${repo}:${image.tags.join(',')} (${digest})`);
    results.push({ repository: repo, tags: image.tags, digest, pushed: true });
  }
  return results;
}
