/** Test helper: push an image made of sbom fixture layers into a test daemon's registry with skopeo. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/shared/process.js';
import { writeOciImage } from '../fixtures/oci-layout.js';
import { makeTar, type TarItem } from '../sbom/tar-writer.js';
import type { TestDaemon } from '../helpers/daemon.js';

/** Write an OCI layout with these layers (bottom first) and `skopeo copy` it to <repo>:<tag>; returns the manifest digest skopeo pushed. */
export async function pushLayers(t: TestDaemon, repo: string, tag: string, layers: TarItem[][], token: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-sbomcli-img-'));
  try {
    writeOciImage(join(dir, 'layout'), { tag, layers: layers.map((items) => ({ tar: makeTar(items), compression: 'gzip' as const })) });
    const host = t.daemon.url.replace(/^http:\/\//, '');
    const env = { ...process.env, HOME: dir, XDG_RUNTIME_DIR: dir };
    const digestFile = join(dir, 'digest');
    await run(
      'skopeo',
      ['copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', `hangar:${token}`, '--digestfile', digestFile, `oci:${join(dir, 'layout')}:${tag}`, `docker://${host}/${repo}:${tag}`],
      { env, timeoutMs: 120_000 },
    );
    return readFileSync(digestFile, 'utf8').trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
