import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { request } from 'node:http';
import { HangarError } from '../shared/errors.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** An image's config blob and its OCI manifest over `layers`, as bytes with the config's digest. */
export function ociImage(config: object, layers: Array<{ mediaType: string; digest: string; size: number }>, annotations?: Record<string, string>): { configBytes: Buffer; configDigest: string; manifest: Buffer } {
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = `sha256:${createHash('sha256').update(configBytes).digest('hex')}`;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: configBytes.length },
      layers,
      ...(annotations ? { annotations } : {}),
    }),
  );
  return { configBytes, configDigest, manifest };
}

/**
 * A minimal OCI distribution client for pushing into Hangar's own registry
 * over loopback (plain HTTP, an API token as the Basic password). Used to
 * seed mirrored base images (the native builder writes in-process; buildah
 * pushes its own builds).
 */
export class RegistryPusher {
  private readonly auth: string;
  constructor(
    private readonly baseUrl: string,
    token: string,
  ) {
    this.auth = 'Basic ' + Buffer.from(`hangar:${token}`).toString('base64');
  }

  private call(method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }> {
    return new Promise((resolve, reject) => {
      const url = new URL(path, this.baseUrl);
      // A pusher asks what Hangar's own store holds: never let the mirror's
      // pull-through turn that question into a request to Docker Hub.
      const req = request(url, { method, headers: { authorization: this.auth, 'x-hangar-no-upstream': '1', ...headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
        res.on('error', reject);
      });
      req.on('error', reject);
      if (body === undefined) req.end();
      else if (typeof body === 'string') createReadStream(body).pipe(req);
      else req.end(body);
    });
  }

  async hasBlob(repo: string, digest: string): Promise<boolean> {
    const r = await this.call('HEAD', `/v2/${repo}/blobs/${digest}`);
    return r.status === 200;
  }

  /** Push a blob from memory or from a file path, skipping it when present. */
  async pushBlob(repo: string, digest: string, content: Buffer | { file: string }): Promise<void> {
    if (await this.hasBlob(repo, digest)) return;
    const size = Buffer.isBuffer(content) ? content.length : statSync(content.file).size;
    const r = await this.call('POST', `/v2/${repo}/blobs/uploads/?digest=${encodeURIComponent(digest)}`, Buffer.isBuffer(content) ? content : content.file, {
      'content-type': 'application/octet-stream',
      'content-length': String(size),
    });
    if (r.status !== 201) throw new HangarError('PUSH_FAILED', `pushing blob ${digest} to ${repo} failed (HTTP ${r.status}): ${r.text.slice(0, 500)}`, { status: 502 });
  }

  async putManifest(repo: string, tag: string, manifest: Buffer, mediaType: string): Promise<string> {
    const r = await this.call('PUT', `/v2/${repo}/manifests/${tag}`, manifest, { 'content-type': mediaType, 'content-length': String(manifest.length) });
    if (r.status !== 201) throw new HangarError('PUSH_FAILED', `pushing manifest ${repo}:${tag} failed (HTTP ${r.status}): ${r.text.slice(0, 500)}`, { status: 502 });
    return String(r.headers['docker-content-digest'] ?? '');
  }

  /**
   * Push an image config and its OCI manifest under each of `tags` (the
   * layers must already be in `repo`). Returns the manifest digest.
   */
  async pushImage(repo: string, tags: string[], config: object, layers: Array<{ mediaType: string; digest: string; size: number }>, annotations?: Record<string, string>): Promise<string> {
    const { configBytes, configDigest, manifest } = ociImage(config, layers, annotations);
    await this.pushBlob(repo, configDigest, configBytes);
    for (const tag of tags) await this.putManifest(repo, tag, manifest, OCI_MANIFEST);
    return `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  }

  /** The manifest digest a tag points at, or undefined. */
  async resolve(repo: string, tag: string): Promise<string | undefined> {
    const r = await this.call('HEAD', `/v2/${repo}/manifests/${tag}`, undefined, {
      accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json',
    });
    return r.status === 200 ? String(r.headers['docker-content-digest'] ?? '') || undefined : undefined;
  }
}
