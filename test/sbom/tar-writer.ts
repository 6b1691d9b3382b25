/**
 * Test helper: a small tar writer for crafting image layers (ustar headers,
 * long names as GNU 'L' records or PAX 'x' headers, symlinks, hard links,
 * whiteouts are just files named `.wh.*`).
 */
import { gzipSync } from 'node:zlib';

export type TarItem =
  | { path: string; type?: 'file'; data: string | Buffer }
  | { path: string; type: 'dir' }
  | { path: string; type: 'symlink' | 'hardlink'; target: string };

export interface TarOptions {
  longNames?: 'gnu' | 'pax';
}

function header(name: string, size: number, flag: string, link = '', prefix = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(flag === '5' ? '0000755\0' : '0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  h.write('00000000000\0', 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write(flag, 156, 'latin1');
  h.write(link, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

function pad(b: Buffer): Buffer {
  const rem = b.length % 512;
  return rem ? Buffer.concat([b, Buffer.alloc(512 - rem)]) : b;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return `${len}${body}`;
}

export function makeTar(items: TarItem[], opts: TarOptions = {}): Buffer {
  const parts: Buffer[] = [];
  for (const it of items) {
    const type = it.type ?? 'file';
    const data = type === 'file' ? Buffer.from((it as { data: string | Buffer }).data) : Buffer.alloc(0);
    const flag = type === 'file' ? '0' : type === 'dir' ? '5' : type === 'symlink' ? '2' : '1';
    const link = type === 'symlink' || type === 'hardlink' ? (it as { target: string }).target : '';
    let name = type === 'dir' && !it.path.endsWith('/') ? it.path + '/' : it.path;
    if (Buffer.byteLength(name) > 100 || Buffer.byteLength(link) > 100) {
      if (opts.longNames === 'pax') {
        let rec = paxRecord('path', name);
        if (link) rec += paxRecord('linkpath', link);
        const body = Buffer.from(rec);
        parts.push(header('PaxHeader', body.length, 'x'), pad(body));
      } else {
        if (Buffer.byteLength(name) > 100) {
          const body = Buffer.from(name + '\0');
          parts.push(header('././@LongLink', body.length, 'L'), pad(body));
        }
        if (Buffer.byteLength(link) > 100) {
          const body = Buffer.from(link + '\0');
          parts.push(header('././@LongLink', body.length, 'K'), pad(body));
        }
      }
      name = name.slice(0, 99);
    }
    parts.push(header(name, data.length, flag, link.slice(0, 100)));
    if (data.length) parts.push(pad(data));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const gzipTar = (items: TarItem[], opts?: TarOptions) => gzipSync(makeTar(items, opts));
