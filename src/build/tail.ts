/**
 * The metadata tail of a Dockerfile: the instructions at the end of the
 * final stage that only change the image config (USER, ENV, EXPOSE, CMD,
 * ENTRYPOINT, LABEL, STOPSIGNAL). With `--layers`, buildah commits a whole
 * image for each of them (about 0.2 s apiece: a commit, a working container,
 * re-execs to resolve the user), which on a one-line change was a third of
 * the build. Hangar builds the Dockerfile without its tail and writes the
 * tail into the pushed image's config itself, the way Docker would.
 *
 * Only the plain cases are taken: anything that needs variable expansion,
 * a non-default shell or escape character, heredocs, quoting beyond simple
 * quotes, port ranges or `--target` is built by buildah as written.
 */

export type TailKeyword = 'ENV' | 'USER' | 'EXPOSE' | 'CMD' | 'ENTRYPOINT' | 'LABEL' | 'STOPSIGNAL';

export interface TailStep {
  keyword: TailKeyword;
  /** The instruction's arguments as written (continuations joined). */
  args: string;
}

export interface MetadataTail {
  /** The Dockerfile up to (not including) the tail, for buildah. */
  head: string;
  steps: TailStep[];
  /** CMD was set in the final stage before the tail (ENTRYPOINT keeps it then). */
  cmdSetBefore: boolean;
}

interface Instruction {
  keyword: string;
  args: string;
  /** Index of its first line. */
  line: number;
}

const TAIL = new Set<string>(['ENV', 'USER', 'EXPOSE', 'CMD', 'ENTRYPOINT', 'LABEL', 'STOPSIGNAL']);

/** Logical instructions (comments dropped, continuations joined), or undefined when the file uses parser features this does not model. */
function instructions(text: string): Instruction[] | undefined {
  const lines = text.split('\n');
  const out: Instruction[] = [];
  let i = 0;
  // Parser directives sit at the very top; only `syntax` is harmless here.
  for (; i < lines.length; i++) {
    const d = /^\s*#\s*([a-zA-Z]+)\s*=/.exec(lines[i]!);
    if (!d) break;
    if (d[1]!.toLowerCase() !== 'syntax') return undefined;
  }
  while (i < lines.length) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (!raw.trim() || /^\s*#/.test(raw)) {
      i++;
      continue;
    }
    const start = i;
    let joined = '';
    let cur = raw;
    for (;;) {
      const cont = /\\\s*$/.test(cur);
      joined += cont ? cur.replace(/\\\s*$/, '') : cur;
      i++;
      if (!cont) break;
      // Comment lines inside a continuation are dropped, like Docker does.
      while (i < lines.length && /^\s*#/.test(lines[i]!)) i++;
      if (i >= lines.length) break;
      cur = lines[i]!.replace(/\r$/, '');
    }
    const m = /^\s*([A-Za-z]+)(?:\s+([\s\S]*))?$/.exec(joined);
    if (!m) return undefined;
    out.push({ keyword: m[1]!.toUpperCase(), args: (m[2] ?? '').trim(), line: start });
  }
  return out;
}

/** Split off the metadata tail of the final stage, or undefined when there is none Hangar can apply exactly. */
export function splitMetadataTail(dockerfile: string): MetadataTail | undefined {
  const ins = instructions(dockerfile);
  if (!ins) return undefined;
  if (ins.some((x) => x.keyword === 'SHELL' || x.keyword === 'ONBUILD' || x.args.includes('<<'))) return undefined;
  let from = -1;
  ins.forEach((x, idx) => {
    if (x.keyword === 'FROM') from = idx;
  });
  if (from < 0) return undefined;
  let start = ins.length;
  while (start - 1 > from + 1 && TAIL.has(ins[start - 1]!.keyword)) start--;
  if (start >= ins.length) return undefined;
  const steps = ins.slice(start).map((x) => ({ keyword: x.keyword as TailKeyword, args: x.args }));
  for (const s of steps) if (s.args.includes('$') || !s.args || parseStep(s) === undefined) return undefined;
  const lines = dockerfile.split('\n');
  const head = lines.slice(0, ins[start]!.line).join('\n') + '\n';
  const cmdSetBefore = ins.slice(from + 1, start).some((x) => x.keyword === 'CMD');
  return { head, steps, cmdSetBefore };
}

type Parsed =
  | { kind: 'pairs'; pairs: Array<[string, string]> }
  | { kind: 'ports'; ports: string[] }
  | { kind: 'argv'; argv: string[] }
  | { kind: 'word'; value: string };

const SIMPLE = /^[^\s"'\\]*$/;

/** One value: bare (no quotes or backslashes) or wholly inside one pair of quotes without escapes. */
function unquote(v: string): string | undefined {
  if (SIMPLE.test(v)) return v;
  const m = /^"([^"\\$`]*)"$/.exec(v) ?? /^'([^']*)'$/.exec(v);
  return m ? m[1] : undefined;
}

/** `k=v k2="v 2"` (or the legacy `k v`) into pairs. */
function pairs(args: string): Array<[string, string]> | undefined {
  if (!/^[^\s=]+=/.test(args)) {
    const m = /^([^\s"'\\=]+)\s+(.*)$/.exec(args);
    if (!m || !SIMPLE.test(m[2]!.replace(/\s/g, ''))) return undefined;
    return [[m[1]!, m[2]!]];
  }
  const out: Array<[string, string]> = [];
  const re = /([^\s"'\\=]+)=("[^"]*"|'[^']*'|[^\s"']*)(?=\s|$)/y;
  let pos = 0;
  while (pos < args.length) {
    const ws = /\s*/y;
    ws.lastIndex = pos;
    ws.exec(args);
    pos = ws.lastIndex;
    if (pos >= args.length) break;
    re.lastIndex = pos;
    const m = re.exec(args);
    if (!m) return undefined;
    const v = unquote(m[2]!);
    if (v === undefined) return undefined;
    out.push([m[1]!, v]);
    pos = re.lastIndex;
  }
  return out.length ? out : undefined;
}

function parseStep(s: TailStep): Parsed | undefined {
  switch (s.keyword) {
    case 'ENV':
    case 'LABEL': {
      const p = pairs(s.args);
      return p ? { kind: 'pairs', pairs: p } : undefined;
    }
    case 'EXPOSE': {
      const ports = s.args.split(/\s+/);
      if (!ports.every((p) => /^\d{1,5}(\/(tcp|udp|sctp))?$/i.test(p))) return undefined;
      return { kind: 'ports', ports: ports.map((p) => (p.includes('/') ? p.toLowerCase() : `${p}/tcp`)) };
    }
    case 'CMD':
    case 'ENTRYPOINT': {
      if (!s.args.startsWith('[')) return { kind: 'argv', argv: ['/bin/sh', '-c', s.args] };
      try {
        const v = JSON.parse(s.args) as unknown;
        if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return { kind: 'argv', argv: v as string[] };
      } catch {
        // Docker would take it as shell form; leave such files to buildah.
      }
      return undefined;
    }
    case 'USER':
    case 'STOPSIGNAL':
      return /^\S+$/.test(s.args) ? { kind: 'word', value: s.args } : undefined;
  }
}

export interface ImageConfigFile {
  created?: string;
  config?: {
    User?: string;
    Env?: string[];
    ExposedPorts?: Record<string, object>;
    Cmd?: string[] | null;
    Entrypoint?: string[] | null;
    Labels?: Record<string, string>;
    StopSignal?: string;
    [k: string]: unknown;
  };
  history?: Array<{ created?: string; created_by?: string; empty_layer?: boolean; [k: string]: unknown }>;
  [k: string]: unknown;
}

/**
 * The image config with the tail applied, as Docker's builder applies these
 * instructions. The time stamps default to the built image's own, so an
 * unchanged rebuild (all cache hits) keeps its digest and a deploy of it
 * changes nothing, as without the tail.
 */
export function applyMetadataTail(image: ImageConfigFile, tail: MetadataTail, now?: Date): ImageConfigFile {
  const created = now?.toISOString() ?? image.created ?? new Date().toISOString();
  const config = { ...(image.config ?? {}) };
  const history = [...(image.history ?? [])];
  let cmdSet = tail.cmdSetBefore;
  for (const s of tail.steps) {
    const p = parseStep(s)!;
    if (s.keyword === 'ENV' && p.kind === 'pairs') {
      const env = [...(config.Env ?? [])];
      for (const [k, v] of p.pairs) {
        const i = env.findIndex((e) => e.split('=')[0] === k);
        if (i >= 0) env[i] = `${k}=${v}`;
        else env.push(`${k}=${v}`);
      }
      config.Env = env;
    } else if (s.keyword === 'LABEL' && p.kind === 'pairs') {
      config.Labels = { ...(config.Labels ?? {}), ...Object.fromEntries(p.pairs) };
    } else if (s.keyword === 'EXPOSE' && p.kind === 'ports') {
      config.ExposedPorts = { ...(config.ExposedPorts ?? {}), ...Object.fromEntries(p.ports.map((x) => [x, {}])) };
    } else if (s.keyword === 'CMD' && p.kind === 'argv') {
      config.Cmd = p.argv;
      cmdSet = true;
    } else if (s.keyword === 'ENTRYPOINT' && p.kind === 'argv') {
      config.Entrypoint = p.argv;
      // Docker: an ENTRYPOINT drops a CMD inherited from the base image.
      if (!cmdSet) config.Cmd = null;
    } else if (s.keyword === 'USER' && p.kind === 'word') {
      config.User = p.value;
    } else if (s.keyword === 'STOPSIGNAL' && p.kind === 'word') {
      config.StopSignal = p.value;
    }
    history.push({ created, created_by: `/bin/sh -c #(nop) ${s.keyword} ${s.args}`, empty_layer: true });
  }
  return { ...image, created, config, history };
}
