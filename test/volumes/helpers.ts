import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/shared/process.js';

/** Put a file into an ext4 image without mounting it (debugfs). */
export async function putFile(image: string, name: string, content: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-put-'));
  try {
    const src = join(dir, 'f');
    writeFileSync(src, content);
    await run('debugfs', ['-w', '-R', `write ${src} ${name}`, image]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Read a file from an ext4 image; undefined when it does not exist. */
export async function catFile(image: string, name: string): Promise<string | undefined> {
  const r = await run('debugfs', ['-R', `cat /${name}`, image], { allowFailure: true });
  const ls = await run('debugfs', ['-R', `stat /${name}`, image], { allowFailure: true });
  if (/File not found/.test(ls.stderr + ls.stdout)) return undefined;
  return r.stdout;
}

/** e2fsck -fn: true when the filesystem is clean. */
export async function fsckClean(image: string): Promise<{ clean: boolean; output: string }> {
  const r = await run('e2fsck', ['-f', '-n', image], { allowFailure: true });
  return { clean: r.code === 0, output: r.stdout + r.stderr };
}

export async function blockCount(image: string): Promise<number> {
  const r = await run('dumpe2fs', ['-h', image]);
  return Number(/^Block count:\s+(\d+)/m.exec(r.stdout)![1]);
}
