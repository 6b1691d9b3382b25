import { z } from 'zod';
import { regErr } from './errors.js';
import { parseDigest } from './digest.js';

export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

const MANIFEST_TYPES = new Set<string>([MT.ociManifest, MT.dockerManifest]);
const INDEX_TYPES = new Set<string>([MT.ociIndex, MT.dockerList]);
export const SUPPORTED_MEDIA_TYPES = [...MANIFEST_TYPES, ...INDEX_TYPES];

/** Manifests larger than this are refused (the spec asks registries to accept at least 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

const descriptor = z.looseObject({
  mediaType: z.string().min(1).max(255),
  digest: z.string().max(200),
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  artifactType: z.string().max(255).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
type Descriptor = z.infer<typeof descriptor>;

const imageManifest = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().max(255).optional(),
  config: descriptor,
  layers: z.array(descriptor),
  subject: descriptor.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

const imageIndex = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().max(255).optional(),
  manifests: z.array(descriptor),
  subject: descriptor.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export interface ParsedManifest {
  mediaType: string;
  kind: 'manifest' | 'index';
  /** Blobs (config, layers) this manifest needs in the repository. */
  blobs: string[];
  /** Child manifests (indexes) this manifest needs in the repository. */
  children: string[];
  subject?: string;
  artifactType?: string;
  annotations?: Record<string, string>;
}

function invalid(message: string, detail?: unknown) {
  return regErr('MANIFEST_INVALID', message, { detail });
}

function checkDigest(d: Descriptor, where: string): string {
  try {
    return parseDigest(d.digest).value;
  } catch {
    throw invalid(`${where}: ${JSON.stringify(d.digest)} is not a sha256/sha512 digest`);
  }
}

/**
 * Parse and check a manifest body. The media type comes from the body's
 * `mediaType` field, else the Content-Type header, else the shape.
 */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid('manifest must be a JSON object');
  const obj = json as Record<string, unknown>;
  const header = contentType?.split(';')[0]!.trim().toLowerCase();
  const declared = typeof obj.mediaType === 'string' ? obj.mediaType : undefined;
  if (declared && header && header !== declared && SUPPORTED_MEDIA_TYPES.includes(header)) {
    throw invalid(`Content-Type ${header} does not match the manifest's mediaType ${declared}`);
  }
  const mediaType =
    declared ?? (header && SUPPORTED_MEDIA_TYPES.includes(header) ? header : 'manifests' in obj ? MT.ociIndex : MT.ociManifest);
  if (!MANIFEST_TYPES.has(mediaType) && !INDEX_TYPES.has(mediaType)) {
    throw invalid(`unsupported manifest media type ${JSON.stringify(mediaType)}: use an OCI or Docker schema 2 manifest or index`, {
      supported: SUPPORTED_MEDIA_TYPES,
    });
  }

  if (MANIFEST_TYPES.has(mediaType)) {
    const r = imageManifest.safeParse(obj);
    if (!r.success) throw invalid(`invalid image manifest: ${describe(r.error)}`);
    const m = r.data;
    const blobs = [checkDigest(m.config, 'config')];
    m.layers.forEach((l, i) => {
      const d = checkDigest(l, `layers[${i}]`);
      // Non-distributable layers live at their URLs, not in this registry.
      if (!l.urls?.length) blobs.push(d);
    });
    return {
      mediaType,
      kind: 'manifest',
      blobs: [...new Set(blobs)],
      children: [],
      subject: m.subject ? checkDigest(m.subject, 'subject') : undefined,
      // OCI 1.1: an artifact's type is artifactType, else its config media type.
      artifactType: m.artifactType ?? m.config.mediaType,
      annotations: m.annotations,
    };
  }
  const r = imageIndex.safeParse(obj);
  if (!r.success) throw invalid(`invalid image index: ${describe(r.error)}`);
  const m = r.data;
  return {
    mediaType,
    kind: 'index',
    blobs: [],
    children: [...new Set(m.manifests.map((d, i) => checkDigest(d, `manifests[${i}]`)))],
    subject: m.subject ? checkDigest(m.subject, 'subject') : undefined,
    artifactType: m.artifactType,
    annotations: m.annotations,
  };
}

function describe(err: z.ZodError): string {
  const i = err.issues[0]!;
  return `${i.path.length ? i.path.map(String).join('.') : '(root)'}: ${i.message}`;
}
