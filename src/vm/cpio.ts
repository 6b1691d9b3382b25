/**
 * Minimal newc cpio writer for the per-machine config archive. Linux unpacks
 * concatenated archives, so this is appended to the base initramfs as is.
 */
function header(name: string, mode: number, size: number, ino: number): Buffer {
  const nameBytes = Buffer.from(name + '\0', 'utf8');
  const fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, nameBytes.length, 0];
  const head = Buffer.from('070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join(''), 'latin1');
  return Buffer.concat([head, nameBytes, Buffer.alloc(pad4(head.length + nameBytes.length))]);
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

export interface CpioEntry {
  name: string;
  /** file data; omit for a directory */
  data?: Buffer;
  mode?: number;
}

export function buildCpio(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 0x4000;
  for (const e of entries) {
    if (e.data) {
      parts.push(header(e.name, 0o100000 | (e.mode ?? 0o600), e.data.length, ino++), e.data, Buffer.alloc(pad4(e.data.length)));
    } else {
      parts.push(header(e.name, 0o040000 | (e.mode ?? 0o755), 0, ino++));
    }
  }
  parts.push(header('TRAILER!!!', 0, 0, 0));
  const out = Buffer.concat(parts);
  return Buffer.concat([out, Buffer.alloc(pad4(out.length))]);
}
