
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
