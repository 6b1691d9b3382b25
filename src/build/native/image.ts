import { createHash } from 'node:crypto';
import type { RegistryPusher } from '../push.js';

/** The container config of an OCI image config (Docker's capitalised keys). */
export interface ContainerConfig {
  User?: string;
  Env?: string[];
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  WorkingDir?: string;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object>;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Shell?: string[];
  OnBuild?: string[] | null;
  Healthcheck?: { Test: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; StartInterval?: number; Retries?: number };
  [k: string]: unknown;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfigJson {
  created?: string;
  architecture: string;
  os: string;
  config: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history: HistoryEntry[];
  [k: string]: unknown;
}

export interface LayerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** Docker's layer media types as their OCI equivalents (same bytes), so the manifest is all OCI. */
export function ociLayerType(mediaType: string): string {
  switch (mediaType) {
    case 'application/vnd.docker.image.rootfs.diff.tar.gzip':
      return 'application/vnd.oci.image.layer.v1.tar+gzip';
    case 'application/vnd.docker.image.rootfs.diff.tar':
      return 'application/vnd.oci.image.layer.v1.tar';
    default:
      return mediaType;
  }
}

/** Push an image config and its OCI manifest (layers must already be in `repo`). Returns the manifest digest. */
export async function pushManifest(pusher: RegistryPusher, repo: string, tag: string, config: ImageConfigJson, layers: LayerDescriptor[]): Promise<string> {
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = `sha256:${createHash('sha256').update(configBytes).digest('hex')}`;
  await pusher.pushBlob(repo, configDigest, configBytes);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: configBytes.length },
      layers,
    }),
  );
  await pusher.putManifest(repo, tag, manifest, 'application/vnd.oci.image.manifest.v1+json');
  return `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
}
