/**
 * Manifest, index and image-config parsing. Everything here comes from a
 * registry and is untrusted: parsed with zod, bounded in size, and turned into
 * plain typed objects.
 */
import { z } from 'zod';
import { HangarError } from '../shared/errors.js';

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerV1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerV1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(', ');

export const MAX_MANIFEST_BYTES = 4 << 20;
export const MAX_CONFIG_BYTES = 8 << 20;

const digestSchema = z.string().regex(/^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/, 'not a sha256/sha512 digest');

const descriptor = z.object({
  mediaType: z.string().optional(),
  digest: digestSchema,
  size: z.number().int().nonnegative(),
  platform: z
    .object({ os: z.string(), architecture: z.string(), variant: z.string().optional() })
    .optional(),
});

const manifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: descriptor,
  layers: z.array(descriptor).max(1000),
});

const indexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptor),
});

const strList = z.array(z.string()).nullish();
const configSchema = z.object({
  architecture: z.string().optional(),
  os: z.string().optional(),
  variant: z.string().optional(),
  config: z
    .object({
      Entrypoint: strList,
      Cmd: strList,
      Env: strList,
      WorkingDir: z.string().nullish(),
      User: z.string().nullish(),
      ExposedPorts: z.record(z.string(), z.unknown()).nullish(),
      StopSignal: z.string().nullish(),
      Labels: z.record(z.string(), z.string()).nullish(),
    })
    .nullish(),
  rootfs: z.object({ type: z.string(), diff_ids: z.array(digestSchema) }).optional(),
});

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** What the machine runtime needs from the image config. */
export interface ImageConfig {
  /** null when the image sets none. */
  entrypoint: string[] | null;
  cmd: string[] | null;
  /** "KEY=value" strings, in image order. */
  env: string[];
  /** "" when unset (the runtime uses "/"). */
  workingDir: string;
  /** "" when unset (root); may be "name", "uid", "uid:gid", "name:group". */
  user: string;
  /** e.g. ["8080/tcp"]. */
  exposedPorts: string[];
  stopSignal: string | null;
  labels: Record<string, string>;
}

export type ParsedManifest =
  | { kind: 'manifest'; mediaType: string; config: Descriptor; layers: Descriptor[] }
  | { kind: 'index'; mediaType: string; manifests: (Descriptor & { platform?: Platform })[] };

function badImage(what: string, message: string): HangarError {
  return new HangarError('BAD_IMAGE', `${what}: ${message}`, { status: 422 });
}

export function parseManifest(bytes: Buffer, headerMediaType: string | undefined, what: string): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw badImage(what, 'the manifest is not valid JSON');
  }
  const obj = (json ?? {}) as Record<string, unknown>;
  const mt = (typeof obj.mediaType === 'string' ? obj.mediaType : undefined) ?? headerMediaType?.split(';')[0]?.trim() ?? '';
  if (obj.schemaVersion === 1 || mt === MEDIA.dockerV1 || mt === MEDIA.dockerV1Signed)
    throw badImage(what, 'Docker schema 1 manifests are not supported; push the image again with a current Docker, buildah or skopeo');
  const isIndex = mt === MEDIA.ociIndex || mt === MEDIA.dockerList || (Array.isArray(obj.manifests) && !obj.layers);
  if (isIndex) {
    const r = indexSchema.safeParse(json);
    if (!r.success) throw badImage(what, `malformed image index (${r.error.issues[0]!.path.join('.')}: ${r.error.issues[0]!.message})`);
    return {
      kind: 'index',
      mediaType: mt || MEDIA.ociIndex,
      manifests: r.data.manifests.map((m) => ({ ...m, mediaType: m.mediaType ?? MEDIA.ociManifest })),
    };
  }
  const r = manifestSchema.safeParse(json);
  if (!r.success) throw badImage(what, `malformed manifest (${r.error.issues[0]!.path.join('.')}: ${r.error.issues[0]!.message})`);
  return {
    kind: 'manifest',
    mediaType: mt || MEDIA.ociManifest,
    config: { ...r.data.config, mediaType: r.data.config.mediaType ?? '' },
    layers: r.data.layers.map((l) => ({ ...l, mediaType: l.mediaType ?? '' })),
  };
}

export const WANT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** Pick the linux/amd64 entry of an index, or explain what is on offer. */
export function choosePlatform(
  index: Extract<ParsedManifest, { kind: 'index' }>,
  what: string,
): Descriptor & { platform?: Platform } {
  const match = index.manifests.find(
    (m) => m.platform?.os === WANT_PLATFORM.os && m.platform.architecture === WANT_PLATFORM.architecture,
  );
  if (match) return match;
  // An index without platform fields (rare, hand-made) with one entry: take it and check the config later.
  const unlabelled = index.manifests.filter((m) => !m.platform);
  if (unlabelled.length === 1 && index.manifests.length === 1) return unlabelled[0]!;
  const offered = index.manifests
    .filter((m) => m.platform && m.platform.os !== 'unknown')
    .map((m) => formatPlatform(m.platform!));
  throw new HangarError(
    'PLATFORM_NOT_FOUND',
    `${what} has no ${formatPlatform(WANT_PLATFORM)} image; it offers ${offered.length ? offered.join(', ') : 'no platforms'}. ` +
      `Build or push a ${formatPlatform(WANT_PLATFORM)} variant (e.g. docker buildx build --platform linux/amd64)`,
    { status: 422, detail: { offered } },
  );
}

export interface ParsedConfig {
  platform: Platform;
  config: ImageConfig;
  diffIds: string[];
}

export function parseImageConfig(bytes: Buffer, what: string): ParsedConfig {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw badImage(what, 'the image config is not valid JSON');
  }
  const r = configSchema.safeParse(json);
  if (!r.success) throw badImage(what, `malformed image config (${r.error.issues[0]!.path.join('.')}: ${r.error.issues[0]!.message})`);
  const c = r.data.config ?? {};
  const platform: Platform = { os: r.data.os ?? 'linux', architecture: r.data.architecture ?? 'amd64' };
  if (r.data.variant) platform.variant = r.data.variant;
  if (platform.os !== WANT_PLATFORM.os || platform.architecture !== WANT_PLATFORM.architecture)
    throw new HangarError(
      'PLATFORM_NOT_FOUND',
      `${what} is built for ${formatPlatform(platform)}, but machines run ${formatPlatform(WANT_PLATFORM)}; rebuild it for ${formatPlatform(WANT_PLATFORM)}`,
      { status: 422, detail: { offered: [formatPlatform(platform)] } },
    );
  return {
    platform,
    diffIds: r.data.rootfs?.diff_ids ?? [],
    config: {
      entrypoint: c.Entrypoint ?? null,
      cmd: c.Cmd ?? null,
      env: c.Env ?? [],
      workingDir: c.WorkingDir ?? '',
      user: c.User ?? '',
      exposedPorts: Object.keys(c.ExposedPorts ?? {}),
      stopSignal: c.StopSignal || null,
      labels: c.Labels ?? {},
    },
  };
}
