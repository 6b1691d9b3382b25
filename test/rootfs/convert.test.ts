import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, readFileSync, readlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { RootfsCache } from '../../src/rootfs/index.js';
import { writeBusyboxImage, BUSYBOX } from '../fixtures/busybox-image.js';
import { ociLayoutStore, writeOciImage } from '../fixtures/oci-layout.js';
import { makeTar } from '../fixtures/tar-writer.js';
import { mountErofs, snapshot, tempDir } from './helpers.js';

test('busybox OCI layout → EROFS image with the right files, links, modes and config', async () => {
  const t = tempDir();
  try {
    const layout = join(t.dir, 'layout');
    const img = writeBusyboxImage(layout, {
      tag: 'v1',
      config: {
        Entrypoint: ['/bin/sh', '-c'],
        Cmd: ['echo hi'],
        Env: ['PATH=/bin', 'A=b=c'],
        WorkingDir: '/srv',
        User: '65534:65534',
        ExposedPorts: { '8080/tcp': {} },
        StopSignal: 'SIGINT',
        Labels: { 'org.example': 'yes' },
      },
    });
    const cache = new RootfsCache({ dataDir: join(t.dir, 'data'), localStore: ociLayoutStore(layout), localRegistryHosts: ['127.0.0.1:5000'] });
    const got = await cache.acquire('127.0.0.1:5000/app:v1');
    assert.equal(got.digest, img.manifestDigest);
    assert.equal(got.converted, true);
    assert.deepEqual(got.config, {
      entrypoint: ['/bin/sh', '-c'],
      cmd: ['echo hi'],
      env: ['PATH=/bin', 'A=b=c'],
      workingDir: '/srv',
      user: '65534:65534',
      exposedPorts: ['8080/tcp'],
      stopSignal: 'SIGINT',
      labels: { 'org.example': 'yes' },
    });
    assert.equal(got.sizeBytes, lstatSync(got.imagePath).size);
    assert.ok(got.imagePath.startsWith(join(t.dir, 'data', 'rootfs', 'images')));
    assert.equal(readFileSync(got.imagePath).readUInt32LE(1024), 0xe0f5e1e2, 'EROFS superblock magic');

    const m = mountErofs(got.imagePath, join(t.dir, 'x'));
    const out = m.dir;
    try {
    assert.deepEqual(readFileSync(join(out, 'bin/busybox')), readFileSync(BUSYBOX));
    assert.equal(lstatSync(join(out, 'bin/busybox')).mode & 0o7777, 0o755);
    assert.deepEqual(readFileSync(join(out, 'bin/sh')), readFileSync(BUSYBOX), 'hard-linked applet');
    assert.equal(readlinkSync(join(out, 'usr/bin/env')), '/bin/busybox');
    assert.equal(lstatSync(join(out, 'tmp')).mode & 0o7777, 0o1777);
    assert.equal(lstatSync(join(out, 'root')).mode & 0o7777, 0o700);
    assert.match(readFileSync(join(out, 'etc/passwd'), 'utf8'), /^root:x:0:0/);

    // `app:v1` (no host) resolves in the local store too, and is a cache hit.
    const again = await cache.acquire('app:v1');
    assert.equal(again.converted, false);
    assert.equal(again.imagePath, got.imagePath);
    got.lease.release();
    again.lease.release();

    const info = await cache.inspect('app:v1');
    assert.equal(info.digest, img.manifestDigest);
    assert.equal(info.layers.length, 1);
    assert.deepEqual(info.platform, { os: 'linux', architecture: 'amd64' });
    assert.equal(info.cachedSizeBytes, got.sizeBytes);
    } finally {
      m.unmount();
    }
  } finally {
    t.cleanup();
  }
});

// VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_BIND_SERVICE (bit 10).
const CAP_NET_BIND = Buffer.from('0100000200040000000000000000000000000000', 'hex');

function getxattrs(p: string): Record<string, string> {
  const script = 'import json,os,sys\np=sys.argv[1]\nprint(json.dumps({n: os.getxattr(p,n,follow_symlinks=False).hex() for n in sorted(os.listxattr(p,follow_symlinks=False))}))';
  return JSON.parse(execFileSync('python3', ['-c', script, p], { encoding: 'utf8' })) as Record<string, string>;
}

test('layers: whiteouts, opaque dirs, cross-layer hard links, dir↔file replacement, ownership, setuid, mtimes, zstd and plain tar, xattrs', async () => {
  const t = tempDir();
  try {
    const layout = join(t.dir, 'layout');
    const l1 = makeTar([
      { name: 'etc/', type: 'dir' },
      { name: 'etc/keep', body: 'keep' },
      { name: 'etc/gone', body: 'gone' },
      { name: 'opq/', type: 'dir' },
      { name: 'opq/old', body: 'old' },
      { name: 'opq/sub/', type: 'dir' },
      { name: 'opq/sub/deep', body: 'deep' },
      { name: 'wasdir/', type: 'dir' },
      { name: 'wasdir/child', body: 'c' },
      { name: 'wasfile', body: 'f' },
      { name: 'target', body: 'shared inode', mode: 0o4755, uid: 1000, gid: 1001, mtime: 1_600_000_000 },
      { name: 'link-to-target', type: 'symlink', linkname: 'target' },
      { name: 'ping', body: 'cap', mode: 0o755, xattrs: { 'security.capability': CAP_NET_BIND, 'user.note': 'kept', 'trusted.overlay.opaque': 'y' } },
    ]);
    const l2 = makeTar([
      { name: 'etc/.wh.gone' },
      { name: 'opq/', type: 'dir' },
      { name: 'opq/.wh..wh..opq' },
      { name: 'opq/new', body: 'new' },
      { name: 'wasdir', body: 'now a file' },
      { name: 'wasfile/', type: 'dir', mode: 0o710 },
      { name: 'wasfile/inside', body: 'i' },
      { name: 'hard', type: 'hardlink', linkname: 'target' },
      { name: 'a-fifo', type: 'fifo', mode: 0o600 },
      { name: 'null', type: 'chardev', devmajor: 1, devminor: 3, mode: 0o666 },
    ]);
    const l3 = makeTar([{ name: '.wh.link-to-target' }, { name: 'sg', body: 'x', mode: 0o2711, uid: 5, gid: 6 }, { name: 'sticky/', type: 'dir', mode: 0o1777 }]);
    writeOciImage(layout, {
      tag: 'layers',
      layers: [
        { tar: l1, compression: 'gzip' },
        { tar: l2, compression: 'zstd' },
        { tar: l3, compression: 'none' },
      ],
    });
    const cache = new RootfsCache({ dataDir: join(t.dir, 'data'), localStore: ociLayoutStore(layout) });
    const got = await cache.acquire('app:layers');
    const m = mountErofs(got.imagePath, join(t.dir, 'x'));
    const out = m.dir;
    try {
    assert.equal(readFileSync(join(out, 'etc/keep'), 'utf8'), 'keep');
    assert.equal(existsSync(join(out, 'etc/gone')), false);
    assert.equal(readFileSync(join(out, 'opq/new'), 'utf8'), 'new');
    assert.equal(existsSync(join(out, 'opq/old')), false);
    assert.equal(existsSync(join(out, 'opq/sub')), false);
    assert.equal(readFileSync(join(out, 'wasdir'), 'utf8'), 'now a file');
    assert.equal(lstatSync(join(out, 'wasfile')).mode & 0o7777, 0o710);
    assert.equal(readFileSync(join(out, 'wasfile/inside'), 'utf8'), 'i');
    assert.equal(readFileSync(join(out, 'hard'), 'utf8'), 'shared inode');
    const st = lstatSync(join(out, 'target'));
    assert.equal(st.mode & 0o7777, 0o4755);
    assert.equal(st.uid, 1000);
    assert.equal(st.gid, 1001);
    assert.equal(Math.round(st.mtimeMs / 1000), 1_600_000_000);
    assert.equal(existsSync(join(out, 'link-to-target')), false);
    const sg = lstatSync(join(out, 'sg'));
    assert.equal(sg.mode & 0o7777, 0o2711);
    assert.equal(sg.uid, 5);
    assert.equal(lstatSync(join(out, 'sticky')).mode & 0o7777, 0o1777);
    assert.ok(lstatSync(join(out, 'a-fifo')).isFIFO());
    const dev = lstatSync(join(out, 'null'));
    assert.ok(dev.isCharacterDevice());
    assert.equal(dev.rdev, (1 << 8) | 3);
    assert.deepEqual(getxattrs(join(out, 'ping')), {
      'security.capability': CAP_NET_BIND.toString('hex'),
      'user.note': Buffer.from('kept').toString('hex'),
    });
    } finally {
      m.unmount();
    }
    got.lease.release();
  } finally {
    t.cleanup();
  }
});

test('the CLI decompressors (igzip, zstd) and the in-process ones (node:zlib, fzstd) build identical trees', async () => {
  const t = tempDir();
  try {
    const layout = join(t.dir, 'layout');
    writeBusyboxImage(layout, {
      tag: 'z',
      compression: 'zstd',
      extraLayers: [{ tar: makeTar([{ name: 'etc/motd', body: 'hello\n'.repeat(10000) }, { name: 'usr/bin/.wh.env' }]), compression: 'gzip' }],
    });
    const snaps = [];
    for (const mode of ['cli', 'js'] as const) {
      const cache = new RootfsCache({ dataDir: join(t.dir, mode), localStore: ociLayoutStore(layout), gzip: mode, zstd: mode });
      const got = await cache.acquire('app:z');
      const m = mountErofs(got.imagePath, join(t.dir, `mnt-${mode}`));
      try {
        snaps.push(snapshot(m.dir));
      } finally {
        m.unmount();
      }
      got.lease.release();
    }
    assert.ok(snaps[0]!.size > 100, String(snaps[0]!.size));
    assert.equal(snaps[0]!.has('usr/bin/env'), false);
    assert.deepEqual(snaps[0], snaps[1]);
  } finally {
    t.cleanup();
  }
});
