/**
 * The record format shared with the guest init (guest/init/src/util.c):
 * `<key> <len>\n<len bytes>\n`. Binary-safe, trivial to parse in C, used for
 * the run config, the log stream and the control channel alike.
 */
export interface GuestRecord {
  key: string;
  value: Buffer;
  /** decoder-relative byte offset just past this record */
  end?: number;
}

const KEY_RE = /^[a-z0-9._]{1,32}$/;

export function encodeRecord(key: string, value: string | Buffer): Buffer {
  if (!KEY_RE.test(key)) throw new Error(`bad record key ${key}`);
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return Buffer.concat([Buffer.from(`${key} ${v.length}\n`, 'latin1'), v, Buffer.from('\n')]);
}

export function encodeRecords(recs: ReadonlyArray<readonly [string, string | Buffer]>): Buffer {
  return Buffer.concat(recs.map(([k, v]) => encodeRecord(k, v)));
}

/**
 * Incremental decoder: feed bytes, get complete records. `consumed` counts
 * bytes of complete records, so callers can keep byte offsets into a file.
 */
export class RecordDecoder {
  private buf: Buffer = Buffer.alloc(0);
  consumed = 0;
  corrupt = false;

  push(chunk: Buffer): GuestRecord[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: GuestRecord[] = [];
    let pos = 0;
    for (;;) {
      const sp = this.buf.indexOf(0x20, pos);
      if (sp < 0) { if (this.buf.length - pos > 33) this.corrupt = true; break; }
      if (sp === pos || sp - pos > 32) { this.corrupt = true; break; }
      const nl = this.buf.indexOf(0x0a, sp);
      if (nl < 0) { if (this.buf.length - sp > 12) this.corrupt = true; break; }
      const key = this.buf.toString('latin1', pos, sp);
      const lenText = this.buf.toString('latin1', sp + 1, nl);
      if (!KEY_RE.test(key) || !/^\d{1,9}$/.test(lenText)) { this.corrupt = true; break; }
      const len = Number(lenText);
      const end = nl + 1 + len;
      if (this.buf.length < end + 1) break;
      if (this.buf[end] !== 0x0a) { this.corrupt = true; break; }
      out.push({ key, value: Buffer.from(this.buf.subarray(nl + 1, end)), end: this.consumed + end + 1 });
      pos = end + 1;
    }
    this.consumed += pos;
    this.buf = this.buf.subarray(pos);
    return out;
  }
}

/** Group records into messages terminated by an `end` record. */
export class MessageDecoder {
  private dec = new RecordDecoder();
  private cur: GuestRecord[] = [];
  get corrupt(): boolean { return this.dec.corrupt; }
  push(chunk: Buffer): GuestRecord[][] {
    const msgs: GuestRecord[][] = [];
    for (const r of this.dec.push(chunk)) {
      if (r.key === 'end') { msgs.push(this.cur); this.cur = []; } else this.cur.push(r);
    }
    return msgs;
  }
}

export function field(msg: GuestRecord[], key: string): string | undefined {
  const r = msg.find((x) => x.key === key);
  return r?.value.toString('utf8');
}
