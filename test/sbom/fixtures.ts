/** Test helper: package databases and layer sets used by the sbom and vulns tests. */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { LocalImageStore } from '../../src/shared/image-store.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/shared/process.js';
import { gzipTar, makeTar, type TarItem } from './tar-writer.js';

export const DEBIAN_OS_RELEASE = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
`;

export const ALPINE_OS_RELEASE = `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.19.1
PRETTY_NAME="Alpine Linux v3.19"
`;

export function dpkgStanza(f: Record<string, string>): string {
  return Object.entries(f)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n');
}

/** A dpkg status with a deliberately old openssl, an epoch'd zlib, a binNMU bash, and a removed package. */
export const OLD_DPKG_STATUS = [
  dpkgStanza({ Package: 'libssl3', Status: 'install ok installed', Priority: 'optional', Architecture: 'amd64', Source: 'openssl', Version: '3.0.11-1~deb12u1', Maintainer: 'Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>', Description: 'Secure Sockets Layer toolkit - shared libraries\n This package is part of the OpenSSL project.', Homepage: 'https://www.openssl.org/' }),
  dpkgStanza({ Package: 'openssl', Status: 'install ok installed', Architecture: 'amd64', Version: '3.0.11-1~deb12u1', Description: 'Secure Sockets Layer toolkit - cryptographic utility' }),
  dpkgStanza({ Package: 'zlib1g', Status: 'install ok installed', Architecture: 'amd64', Source: 'zlib', Version: '1:1.2.13.dfsg-1', Description: 'compression library - runtime' }),
  dpkgStanza({ Package: 'bash', Status: 'install ok installed', Architecture: 'amd64', Source: 'bash (5.2.15-2)', Version: '5.2.15-2+b2', Description: 'GNU Bourne Again SHell' }),
  dpkgStanza({ Package: 'tzdata', Status: 'install ok installed', Architecture: 'all', Version: '2024a-0+deb12u1', Description: 'time zone and daylight-saving time data' }),
  dpkgStanza({ Package: 'oldpkg', Status: 'deinstall ok config-files', Architecture: 'amd64', Version: '1.0-1', Description: 'removed, only conffiles left' }),
].join('\n\n') + '\n';

export const NEW_DPKG_STATUS = OLD_DPKG_STATUS.replaceAll('3.0.11-1~deb12u1', '3.0.15-1~deb12u1') + '\n' + dpkgStanza({ Package: 'curl', Status: 'install ok installed', Architecture: 'amd64', Version: '7.88.1-10+deb12u5', Description: 'command line tool for transferring data with URL syntax' }) + '\n';

export const APK_INSTALLED = [
  'C:Q1abc=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nS:100\nI:200\nT:the musl c library (libc) implementation\nU:https://musl.libc.org/\nL:MIT\no:musl\nm:Timo Teräs <timo.teras@iki.fi>\nF:lib\nR:ld-musl-x86_64.so.1',
  'P:libcrypto3\nV:3.1.4-r1\nA:x86_64\nT:Crypto library from openssl\nU:https://www.openssl.org/\nL:Apache-2.0\no:openssl',
  'P:busybox\nV:1.36.1-r15\nA:x86_64\nT:Size optimized toolbox\nL:GPL-2.0-only\no:busybox',
].join('\n\n') + '\n\n';

/** package-lock.json v3 of an app with a vulnerable lodash and minimist, a patched express, a scoped package and a dev dependency. */
export const NPM_LOCK_V3 = JSON.stringify(
  {
    name: 'demo-app',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'demo-app', version: '1.0.0', dependencies: { lodash: '^4.17.20', express: '^4.19.2' } },
      'node_modules/lodash': { version: '4.17.20', resolved: 'https://registry.npmjs.org/lodash/-/lodash-4.17.20.tgz', license: 'MIT' },
      'node_modules/express': { version: '4.19.2', license: 'MIT' },
      'node_modules/minimist': { version: '1.2.5' },
      'node_modules/@babel/traverse': { version: '7.22.0', license: 'MIT' },
      'node_modules/express/node_modules/debug': { version: '2.6.9' },
      'node_modules/jest': { version: '29.7.0', dev: true },
      'node_modules/@esbuild/darwin-arm64': { version: '0.19.0', optional: true, os: ['darwin'], cpu: ['arm64'] },
      'node_modules/@esbuild/linux-x64': { version: '0.19.0', optional: true, os: ['linux'], cpu: ['x64'] },
      'node_modules/not-on-linux': { version: '1.0.0', os: ['!linux'] },
      'packages/local-lib': { version: '0.0.1' },
      'node_modules/local-lib': { resolved: 'packages/local-lib', link: true },
    },
  },
  null,
  2,
);

export const REQUESTS_METADATA = 'Metadata-Version: 2.1\nName: requests\nVersion: 2.25.0\nSummary: Python HTTP for Humans.\nHome-page: https://requests.readthedocs.io\nAuthor: Kenneth Reitz\nLicense: Apache 2.0\n\nlong description here\nName: not-a-header\n';
export const PYYAML_PKGINFO = 'Metadata-Version: 1.1\nName: PyYAML\nVersion: 5.3.1\nSummary: YAML parser and emitter for Python\nLicense: MIT\n';

export function debianBaseLayer(status = OLD_DPKG_STATUS): TarItem[] {
  return [
    { path: 'etc', type: 'dir' },
    { path: 'usr/lib/os-release', data: DEBIAN_OS_RELEASE },
    { path: 'etc/os-release', type: 'symlink', target: '../usr/lib/os-release' },
    { path: 'var/lib/dpkg', type: 'dir' },
    { path: 'var/lib/dpkg/status', data: status },
    { path: 'usr/bin/bash', data: Buffer.alloc(5000, 1) },
  ];
}

export function npmAppLayer(): TarItem[] {
  return [
    { path: 'app', type: 'dir' },
    { path: 'app/package-lock.json', data: NPM_LOCK_V3 },
    { path: 'app/node_modules/lodash/package.json', data: JSON.stringify({ name: 'lodash', version: '4.17.20', license: 'MIT' }) },
    { path: 'app/node_modules/@babel/traverse/package.json', data: JSON.stringify({ name: '@babel/traverse', version: '7.22.0', license: 'MIT' }) },
    { path: 'app/node_modules/lodash/fp/package.json', data: JSON.stringify({ main: '../fp.js' }) },
    { path: 'app/server.js', data: 'console.log("hi")\n' },
  ];
}

export function pythonLayer(): TarItem[] {
  return [
    { path: 'usr/lib/python3/dist-packages/requests-2.25.0.dist-info/METADATA', data: REQUESTS_METADATA },
    { path: 'usr/lib/python3/dist-packages/PyYAML-5.3.1.egg-info', data: PYYAML_PKGINFO },
  ];
}

export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `hangar-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Write layers to files: gzip, zstd (compressed by the real zstd tool) or plain tar. */
export async function writeLayers(dir: string, layers: Array<{ items: TarItem[]; compression?: 'gzip' | 'zstd' | 'none' }>): Promise<string[]> {
  const out: string[] = [];
  for (const [i, l] of layers.entries()) {
    const c = l.compression ?? 'gzip';
    const p = join(dir, `layer${i}.${c === 'gzip' ? 'tar.gz' : c === 'zstd' ? 'tar.zst' : 'tar'}`);
    if (c === 'gzip') await writeFile(p, gzipTar(l.items));
    else if (c === 'none') await writeFile(p, makeTar(l.items));
    else {
      const raw = join(dir, `layer${i}.tar`);
      await writeFile(raw, makeTar(l.items));
      await run('zstd', ['-q', '-f', '-o', p, raw]);
      await rm(raw);
    }
    out.push(p);
  }
  return out;
}

/** A file-backed LocalImageStore: the same interface the registry implements. */
export async function blobStore(dir: string) {
  const blobs = join(dir, 'blobs');
  await mkdir(blobs, { recursive: true });
  const tags = new Map<string, { digest: string; mediaType: string }>();
  const put = async (data: Buffer | string) => {
    const digest = 'sha256:' + createHash('sha256').update(data).digest('hex');
    await writeFile(join(blobs, digest.slice(7)), data);
    return digest;
  };
  const store: LocalImageStore = {
    resolveManifest: (repo, ref) => tags.get(`${repo}:${ref}`) ?? [...tags.values()].find((t) => t.digest === ref),
    blobPath: (digest) => (/^sha256:[a-f0-9]{64}$/.test(digest) ? join(blobs, digest.slice(7)) : undefined),
  };
  return { store, put, tags };
}

/** Push layer files as a single-platform OCI image tagged repo:tag; returns the manifest digest. */
export async function pushImage(s: Awaited<ReturnType<typeof blobStore>>, repo: string, tag: string, layerFiles: string[]): Promise<string> {
  const layers = [];
  for (const f of layerFiles) {
    const data = await readFile(f);
    layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: await s.put(data), size: data.length });
  }
  const config = await s.put('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const digest = await s.put(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 1 }, layers }));
  s.tags.set(`${repo}:${tag}`, { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
  return digest;
}
