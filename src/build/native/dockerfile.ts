/**
 * Dockerfile front end of the native builder: text → stages of typed
 * instructions, with Docker's parsing rules (moby/buildkit's
 * frontend/dockerfile/parser and instructions packages) so a Dockerfile
 * means the same here as under `docker build`. Anything the native builder
 * does not implement throws UnsupportedFeature and the build goes to buildah.
 *
 * Raw or expanded: nothing here is expanded. Values Docker expands at build
 * time are stored as written (quotes and escapes kept) because they depend on
 * the ARG/ENV state at that step; the builder expands them with the stage's
 * escape character:
 *  - expandWord (one word, whitespace kept): ENV and LABEL keys and values,
 *    ARG names and defaults (global ones against earlier global ARGs), FROM
 *    image and --platform, WORKDIR path, USER, STOPSIGNAL, each VOLUME path,
 *    each COPY/ADD source and the destination (JSON form too), --chown,
 *    --chmod. COPY --from is literal: Docker rejects variables in it, and
 *    so does this parser.
 *  - expandWords (split into several words): each EXPOSE entry, since a
 *    variable may hold several ports.
 *  - never: RUN/CMD/ENTRYPOINT/HEALTHCHECK commands and SHELL (the shell
 *    expands shell form; Docker leaves exec form alone), ONBUILD triggers.
 * RUN --mount options are the exception: they are resolved here, and one that
 * uses a variable is an UnsupportedFeature.
 *
 * MAINTAINER (deprecated) becomes LABEL maintainer=<value>; Docker sets the
 * config's Author instead, but the label is what `docker inspect` users look
 * for today. Its value is stored single-quoted so expandWord gives it back
 * literally, as Docker does not expand MAINTAINER.
 */
import {
  DockerfileError,
  UnsupportedFeature,
  expandWord,
  extractFlags,
  hasHeredoc,
  isSpace,
  parseWords,
  trimLeft,
  trimSpace,
} from './dockerfile-words.js';

export { DockerfileError, UnsupportedFeature, expandWord, expandWords } from './dockerfile-words.js';

export type CommandForm = { form: 'exec'; argv: string[] } | { form: 'shell'; script: string };
/** `target` is '' when `env=` is given without `target=`: the secret is then only an environment variable, as in Docker. */
export interface SecretMount { id: string; target: string /* default /run/secrets/<id> */; required: boolean; mode: number /* default 0o400 */; uid: number; gid: number; env?: string }
export type Instruction =
  | { kind: 'RUN'; line: number; text: string; command: CommandForm; secrets: SecretMount[] }
  | { kind: 'COPY' | 'ADD'; line: number; text: string; sources: string[]; dest: string; from?: string; chown?: string; chmod?: string; link: boolean }
  | { kind: 'ENV'; line: number; text: string; pairs: Array<[string, string]> } // raw key and value: expandWord both
  | { kind: 'ARG'; line: number; text: string; args: Array<{ name: string; default?: string }> } // raw: expandWord both
  | { kind: 'LABEL'; line: number; text: string; pairs: Array<[string, string]> } // raw key and value: expandWord both
  | { kind: 'WORKDIR'; line: number; text: string; path: string }
  | { kind: 'USER'; line: number; text: string; user: string }
  | { kind: 'EXPOSE'; line: number; text: string; ports: string[] }
  | { kind: 'CMD' | 'ENTRYPOINT'; line: number; text: string; command: CommandForm }
  | { kind: 'SHELL'; line: number; text: string; argv: string[] }
  | { kind: 'STOPSIGNAL'; line: number; text: string; signal: string }
  | { kind: 'VOLUME'; line: number; text: string; paths: string[] }
  | { kind: 'HEALTHCHECK'; line: number; text: string; none: true } | { kind: 'HEALTHCHECK'; line: number; text: string; none: false; command: CommandForm; intervalNs?: number; timeoutNs?: number; startPeriodNs?: number; startIntervalNs?: number; retries?: number }
  | { kind: 'ONBUILD'; line: number; text: string; trigger: string };
export interface Stage { index: number; name?: string /* lower-cased AS name */; from: string /* raw, unexpanded */; platform?: string; line: number; instructions: Instruction[] }
export interface Dockerfile { escape: '\\' | '`'; globalArgs: Array<{ name: string; default?: string }>; stages: Stage[] }

type Escape = '\\' | '`';

const KEYWORDS = ['FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL'];

function fail(line: number, message: string): never {
  throw new DockerfileError(`Dockerfile line ${line}: ${message}`, line);
}

function unsupported(line: number, reason: string): never {
  throw new UnsupportedFeature(`${reason} is not supported by the native builder`, line);
}

/** One instruction with its continuation lines joined; `line` is where it starts. */
interface Logical {
  line: number;
  text: string;
}

const DOCKER_SYNTAX = /^(docker\.io\/)?docker\/dockerfile(-upstream)?([:@]\S*)?$/i;
const DIRECTIVE = /^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$/;

function continuation(escape: Escape): RegExp {
  const e = escape === '\\' ? '\\\\' : '`';
  // An escape at the end (blanks allowed after it) continues the line, unless it is itself escaped.
  return new RegExp(`([^${e}])${e}[ \\t]*$|^${e}[ \\t]*$`);
}

function readLines(source: string): { escape: Escape; lines: Logical[] } {
  const raw = (source.startsWith('\ufeff') ? source.slice(1) : source).split('\n');
  if (raw[raw.length - 1] === '') raw.pop();
  const clean = (l: string) => l.replace(/[\r\n]+$/, '');
  let escape: Escape = '\\';
  let cont = continuation(escape);
  let directives = true;
  const seen = new Set<string>();
  const lines: Logical[] = [];
  const trimCont = (l: string): [string, boolean] => (cont.test(l) ? [l.replace(cont, '$1'), true] : [l, false]);
  for (let i = 0; i < raw.length; ) {
    const start = i + 1;
    let tok = trimLeft(clean(raw[i++]!));
    if (directives) {
      // Directives only count before the first comment, blank line or instruction.
      const m = DIRECTIVE.exec(tok);
      const key = m?.[1]!.toLowerCase();
      if (!m || (key !== 'escape' && key !== 'syntax' && key !== 'check')) directives = false;
      else {
        if (seen.has(key!)) fail(start, `only one "# ${key}=" parser directive may be used; remove the repeated one`);
        seen.add(key!);
        // Another frontend image may give the file a different language; only Docker's own is modelled here.
        if (key === 'syntax' && !DOCKER_SYNTAX.test(m[2]!)) unsupported(start, `"# syntax=${m[2]}" (a custom Dockerfile frontend)`);
        if (key === 'escape') {
          if (m[2] !== '\\' && m[2] !== '`') fail(start, `"# escape=${m[2]}" is not a valid escape character; use \\ or \``);
          escape = m[2] as Escape;
          cont = continuation(escape);
        }
      }
    }
    if (tok.startsWith('#')) tok = '';
    let [text, more] = trimCont(tok);
    if (!more && text === '') continue;
    while (more && i < raw.length) {
      const next = clean(raw[i++]!);
      // Comment and blank lines inside a continuation are skipped, not ends of the instruction.
      if (trimLeft(next).startsWith('#') || trimLeft(next) === '') continue;
      let seg: string;
      [seg, more] = trimCont(next);
      text += seg;
    }
    lines.push({ line: start, text });
  }
  return { escape, lines };
}

/** Docker's split of an instruction line into keyword, flags and arguments. */
function splitCommand(line: string): { keyword: string; flags: string[]; args: string } {
  const t = trimSpace(line);
  const m = /[\t\v\f\r ]+/.exec(t);
  if (!m) return { keyword: t, flags: [], args: '' };
  const { flags, rest } = extractFlags(t.slice(m.index + m[0].length));
  return { keyword: t.slice(0, m.index), flags, args: trimSpace(rest) };
}

const splitWhitespace = (s: string): string[] => (s === '' ? [] : s.split(/[\t\v\f\r\n ]+/));

/** The JSON (exec) form, or undefined when `rest` is not a JSON array (Docker then takes it as shell form). */
function jsonArray(rest: string, line: number, keyword: string): string[] | undefined {
  const t = trimLeft(rest);
  if (!t.startsWith('[')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(t);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed)) return undefined;
  if (!parsed.every((v) => typeof v === 'string')) {
    fail(line, `${keyword} in JSON form must be an array of strings only, e.g. ${keyword} ["python3", "app.py"]`);
  }
  return parsed as string[];
}

function commandForm(args: string, line: number, keyword: string): CommandForm | undefined {
  if (args === '') return undefined;
  const argv = jsonArray(args, line, keyword);
  return argv ? { form: 'exec', argv } : { form: 'shell', script: args };
}

type FlagKind = 'bool' | 'string' | 'strings';

/** Docker's flag rules: known names only, a value where one is needed, no repeats except list flags. */
function parseFlags(keyword: string, line: number, words: string[], spec: Record<string, FlagKind>): Map<string, string[]> {
  const got = new Map<string, string[]>();
  const known = Object.keys(spec).map((k) => `--${k}`);
  for (const word of words) {
    if (word === '--') break;
    const eq = word.indexOf('=');
    const name = eq < 0 ? word.slice(2) : word.slice(2, eq);
    const value = eq < 0 ? undefined : word.slice(eq + 1);
    const kind = spec[name];
    if (!kind) {
      fail(line, `${keyword} has no --${name} option; ${known.length ? `it accepts ${known.join(', ')}` : `${keyword} takes no options`}`);
    }
    if (got.has(name) && kind !== 'strings') fail(line, `${keyword} --${name} is given twice; give it once`);
    if (kind === 'bool') {
      if (value === '') fail(line, `${keyword} --${name}= needs a value: write --${name} or --${name}=false`);
      const v = (value ?? 'true').toLowerCase();
      if (v !== 'true' && v !== 'false') fail(line, `${keyword} --${name} takes true or false, not "${value}"`);
      got.set(name, [v]);
    } else {
      if (value === undefined) fail(line, `${keyword} --${name} needs a value, e.g. --${name}=...`);
      got.set(name, [...(got.get(name) ?? []), value]);
    }
  }
  return got;
}

const one = (flags: Map<string, string[]>, name: string): string | undefined => flags.get(name)?.[0];

/** Whether an ADD source is fetched from the network (a URL or a git repository) rather than the context. */
export function isRemoteSource(src: string): boolean {
  return /^(https?|git|ssh):\/\//i.test(src) || /^git@/.test(src) || /^github\.com\//.test(src);
}

/** One CSV record as Go's encoding/csv reads it; undefined when malformed. */
function csvFields(s: string): string[] | undefined {
  if (s === '') return undefined;
  const out: string[] = [];
  let i = 0;
  for (;;) {
    if (s[i] === '"') {
      let f = '';
      for (i++; ; ) {
        if (i >= s.length) return undefined;
        if (s[i] === '"') {
          if (s[i + 1] === '"') {
            f += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        f += s[i++];
      }
      if (i < s.length && s[i] !== ',') return undefined;
      out.push(f);
    } else {
      const j = s.indexOf(',', i) < 0 ? s.length : s.indexOf(',', i);
      const f = s.slice(i, j);
      if (f.includes('"')) return undefined;
      out.push(f);
      i = j;
    }
    if (i >= s.length) return out;
    i++;
    if (i >= s.length) return [...out, ''];
  }
}

function goBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

/** Go's path.Base. */
function baseName(p: string): string {
  if (p === '') return '.';
  const t = p.replace(/\/+$/, '');
  return t === '' ? '/' : t.slice(t.lastIndexOf('/') + 1);
}

const MOUNT_TYPES = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'];

/** A RUN --mount value, resolved the way BuildKit resolves a secret mount; other mount types are unsupported. */
function secretMount(value: string, line: number, escape: Escape): SecretMount {
  const example = 'e.g. --mount=type=secret,id=npmrc,target=/root/.npmrc';
  const fields = csvFields(value);
  if (!fields) fail(line, `RUN --mount=${value} is not a comma-separated list of key=value options, ${example}`);
  const expand = (v: string): string => {
    try {
      return expandWord(v, (name) => unsupported(line, `a variable ($${name}) in a RUN --mount option`), escape);
    } catch (e) {
      if (e instanceof DockerfileError) fail(line, `RUN --mount: ${e.message}`);
      throw e;
    }
  };
  let type = 'bind';
  for (const f of fields) {
    const eq = f.indexOf('=');
    if (eq >= 0 && f.slice(0, eq).toLowerCase() === 'type') {
      type = expand(f.slice(eq + 1)).toLowerCase();
      if (!MOUNT_TYPES.includes(type)) fail(line, `RUN --mount type "${type}" is unknown; use one of ${MOUNT_TYPES.join(', ')}`);
    }
  }
  if (type !== 'secret') unsupported(line, `RUN --mount=type=${type}`);

  let current = 'bind';
  let id = '';
  let source = '';
  let target = '';
  let required = false;
  let mode = 0o400;
  let uid = 0;
  let gid = 0;
  let env: string | undefined;
  const number = (key: string, v: string, radix: 8 | 10): number => {
    const ok = radix === 8 ? /^[0-7]+$/.test(v) : /^[0-9]+$/.test(v);
    const n = ok ? parseInt(v, radix) : NaN;
    if (!(n <= 0xffffffff)) fail(line, `RUN --mount ${key}=${v} is not a valid ${radix === 8 ? 'octal mode, e.g. mode=0440' : `number, e.g. ${key}=1000`}`);
    return n;
  };
  for (const field of fields) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    if (eq < 0) {
      if (['readonly', 'ro', 'readwrite', 'rw'].includes(key)) continue; // secrets are always read-only
      if (key !== 'required') fail(line, `RUN --mount option "${field}" must be a key=value pair, ${example}`);
    }
    if (key === 'required' && current !== 'secret') fail(line, `RUN --mount: put type=secret before "required"`);
    const v = eq < 0 ? 'true' : expand(field.slice(eq + 1));
    switch (key) {
      case 'type':
        current = v.toLowerCase();
        break;
      case 'id':
        id = v;
        break;
      case 'source':
      case 'src':
        source = v;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        target = v;
        break;
      case 'required':
      case 'readonly':
      case 'ro':
      case 'readwrite':
      case 'rw': {
        const b = goBool(v);
        if (b === undefined) fail(line, `RUN --mount ${key}=${v}: the value must be true or false`);
        if (key === 'required') required = b;
        break;
      }
      case 'mode':
        mode = number(key, v, 8);
        break;
      case 'uid':
        uid = number(key, v, 10);
        break;
      case 'gid':
        gid = number(key, v, 10);
        break;
      case 'env':
        env = v;
        break;
      case 'from':
      case 'size':
      case 'sharing':
        fail(line, `RUN --mount: a secret mount cannot have ${key}=; remove it`);
      default:
        fail(line, `RUN --mount has an unknown option "${key}" in "${field}"; a secret mount takes id, target, required, mode, uid, gid, env`);
    }
  }
  if (source && id) fail(line, 'RUN --mount=type=secret takes id or source, not both; keep id');
  let secretId = source || id;
  if (!secretId) {
    if (!target) fail(line, `RUN --mount=type=secret needs an id or a target, ${example}`);
    secretId = baseName(target);
  }
  const mount: SecretMount = { id: secretId, target: target || (env === undefined ? `/run/secrets/${baseName(secretId)}` : ''), required, mode, uid, gid };
  if (env !== undefined) mount.env = env;
  return mount;
}

const UNITS: Record<string, bigint> = { ns: 1n, us: 1000n, 'µs': 1000n, 'μs': 1000n, ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n };

/** Go's time.ParseDuration, in nanoseconds; undefined when invalid. */
function parseGoDuration(s: string): bigint | undefined {
  let rest = s;
  const neg = rest.startsWith('-');
  if (neg || rest.startsWith('+')) rest = rest.slice(1);
  if (rest === '0') return 0n;
  if (rest === '') return undefined;
  let total = 0n;
  while (rest !== '') {
    const m = /^(\d*)(?:\.(\d*))?/.exec(rest)!;
    const whole = m[1]!;
    const frac = m[2] ?? '';
    if (whole === '' && frac === '') return undefined;
    rest = rest.slice(m[0].length);
    const u = /^[^\d.]*/.exec(rest)![0];
    const unit = UNITS[u];
    if (unit === undefined) return undefined;
    rest = rest.slice(u.length);
    total += BigInt(whole || '0') * unit + (frac ? (BigInt(frac) * unit) / 10n ** BigInt(frac.length) : 0n);
    if (total > 2n ** 63n - 1n) return undefined;
  }
  return neg ? -total : total;
}

function healthcheck(args: string, flags: string[], line: number, text: string): Instruction {
  const example = 'e.g. HEALTHCHECK --interval=30s CMD curl -f http://localhost/ || exit 1';
  if (args === '') fail(line, `HEALTHCHECK needs CMD <command> or NONE, ${example}`);
  let sep = 0;
  while (sep < args.length && !isSpace(args[sep]!)) sep++;
  const type = args.slice(0, sep).toUpperCase();
  const rest = trimLeft(args.slice(sep));
  if (type === 'NONE') {
    if (rest !== '') fail(line, 'HEALTHCHECK NONE takes no arguments');
    if (flags.length > 0) fail(line, 'HEALTHCHECK NONE takes no options; remove them');
    return { kind: 'HEALTHCHECK', line, text, none: true };
  }
  const f = parseFlags('HEALTHCHECK', line, flags, { interval: 'string', timeout: 'string', 'start-period': 'string', 'start-interval': 'string', retries: 'string' });
  if (type !== 'CMD') fail(line, `HEALTHCHECK type "${args.slice(0, sep)}" is unknown; write HEALTHCHECK CMD <command> or HEALTHCHECK NONE`);
  const command = commandForm(rest, line, 'HEALTHCHECK CMD');
  if (!command || (command.form === 'exec' && command.argv.length === 0)) fail(line, `HEALTHCHECK CMD needs a command, ${example}`);
  const out: Extract<Instruction, { kind: 'HEALTHCHECK'; none: false }> = { kind: 'HEALTHCHECK', line, text, none: false, command };
  const durations = [
    ['interval', 'intervalNs'],
    ['timeout', 'timeoutNs'],
    ['start-period', 'startPeriodNs'],
    ['start-interval', 'startIntervalNs'],
  ] as const;
  for (const [flag, field] of durations) {
    const v = one(f, flag);
    if (v === undefined) continue;
    const ns = parseGoDuration(v);
    if (ns === undefined) fail(line, `HEALTHCHECK --${flag}=${v} is not a duration; write it like 30s, 1m30s or 500ms`);
    // Zero means "Docker's default"; anything else must be at least 1ms.
    if (ns !== 0n && ns < 1_000_000n) fail(line, `HEALTHCHECK --${flag}=${v} is shorter than 1ms; use 0 for the default or at least 1ms`);
    out[field] = Number(ns);
  }
  const retries = one(f, 'retries');
  if (retries !== undefined) {
    const n = /^[+-]?[0-9]+$/.test(retries) ? Number(retries) : NaN;
    if (!Number.isInteger(n) || n > 2 ** 31 - 1 || n < -(2 ** 31)) fail(line, `HEALTHCHECK --retries=${retries} is not a whole number, e.g. --retries=3`);
    if (n < 0) fail(line, `HEALTHCHECK --retries cannot be negative (${retries})`);
    out.retries = n;
  }
  return out;
}

/** ENV and LABEL: `K=V ...`, or the legacy `K V` (the rest of the line is the value). */
function nameValues(keyword: string, args: string, line: number, escape: Escape): Array<[string, string]> {
  const words = parseWords(args, escape);
  if (words.length === 0) fail(line, `${keyword} needs at least one name=value pair, e.g. ${keyword} MODE=production`);
  if (!words[0]!.includes('=')) {
    const m = /[\t\v\f\r ]+/.exec(args);
    if (!m) fail(line, `${keyword} ${args} has no value; write ${keyword} ${args}=<value>`);
    return [[args.slice(0, m.index), args.slice(m.index + m[0].length)]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) fail(line, `${keyword} "${w}" is not of the form name=value (quote values that contain spaces: ${keyword} A="x y")`);
    if (eq === 0) fail(line, `${keyword} names cannot be blank ("${w}")`);
    return [w.slice(0, eq), w.slice(eq + 1)] as [string, string];
  });
}

function copyOrAdd(keyword: 'COPY' | 'ADD', args: string, flags: string[], line: number, text: string): Instruction {
  const spec: Record<string, FlagKind> =
    keyword === 'COPY'
      ? { from: 'string', chown: 'string', chmod: 'string', link: 'bool', parents: 'bool', exclude: 'strings' }
      : { chown: 'string', chmod: 'string', link: 'bool', 'keep-git-dir': 'bool', checksum: 'string', exclude: 'strings', unpack: 'bool' };
  const f = parseFlags(keyword, line, flags, spec);
  const json = jsonArray(args, line, keyword);
  if (!json && hasHeredoc(text)) unsupported(line, `a heredoc (<<EOF) in ${keyword}`);
  const words = json ?? splitWhitespace(args);
  if (words.length < 2) fail(line, `${keyword} needs a source and a destination, e.g. ${keyword} app.py /app/`);
  if (one(f, 'parents') === 'true') unsupported(line, `${keyword} --parents`);
  for (const name of ['exclude', 'checksum', 'keep-git-dir', 'unpack']) if (f.has(name)) unsupported(line, `${keyword} --${name}`);
  const from = one(f, 'from');
  // Docker refuses variables (and quotes, escapes) in --from rather than expanding them.
  const literal = (v: string) => {
    try {
      return expandWord(v, () => '') === v;
    } catch {
      return false;
    }
  };
  if (from !== undefined && !literal(from)) {
    fail(line, `COPY --from=${from}: --from cannot use variables; define a stage with FROM \${...} AS <name> and copy from that`);
  }
  const sources = words.slice(0, -1);
  if (keyword === 'ADD' && sources.some(isRemoteSource)) unsupported(line, 'ADD from a URL or a git repository');
  const out: Extract<Instruction, { kind: 'COPY' | 'ADD' }> = { kind: keyword, line, text, sources, dest: words[words.length - 1]!, link: one(f, 'link') === 'true' };
  for (const name of ['from', 'chown', 'chmod'] as const) {
    const v = one(f, name);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

function onbuild(args: string, line: number, text: string, escape: Escape): Instruction {
  if (args === '') fail(line, 'ONBUILD needs an instruction, e.g. ONBUILD COPY . /app/');
  const sub = splitCommand(args);
  const k = sub.keyword.toUpperCase();
  if (k === 'ONBUILD') fail(line, 'ONBUILD ONBUILD is not allowed');
  if (k === 'FROM' || k === 'MAINTAINER') fail(line, `${k} is not allowed as an ONBUILD trigger`);
  if (!KEYWORDS.includes(k)) fail(line, `ONBUILD ${sub.keyword}: unknown instruction "${sub.keyword}"`);
  // The trigger runs in a later build, but its heredoc body would be read from this file.
  if ((k === 'RUN' || k === 'COPY' || k === 'ADD') && !jsonArray(sub.args, line, k) && hasHeredoc(text)) {
    unsupported(line, 'a heredoc (<<EOF) in an ONBUILD trigger');
  }
  const trigger = text.replace(/^\s*ONBUILD\s*/i, '');
  // A broken trigger is reported now, not in some later build. Features this builder lacks do
  // not matter here: the trigger only runs in builds FROM this image.
  try {
    instruction(k, sub.flags, sub.args, line, trigger, escape);
  } catch (e) {
    if (!(e instanceof UnsupportedFeature)) throw e;
  }
  return { kind: 'ONBUILD', line, text, trigger };
}

/** MAINTAINER's value, quoted so that expandWord returns it unchanged. */
function literal(value: string, escape: Escape): string {
  return `'${value.split("'").join(`'${escape}''`)}'`;
}

function instruction(keyword: string, flags: string[], args: string, line: number, text: string, escape: Escape): Instruction {
  const noFlags = () => parseFlags(keyword, line, flags, {});
  const needArg = (example: string) => {
    if (args === '') fail(line, `${keyword} needs an argument, e.g. ${keyword} ${example}`);
    return args;
  };
  switch (keyword) {
    case 'RUN': {
      const f = parseFlags('RUN', line, flags, { mount: 'strings', network: 'string', security: 'string', device: 'strings' });
      const command = commandForm(args, line, 'RUN');
      if (!command) fail(line, 'RUN needs a command, e.g. RUN apt-get update');
      const secrets = (f.get('mount') ?? []).map((m) => secretMount(m, line, escape));
      if (f.has('network')) unsupported(line, 'RUN --network');
      if (f.has('security')) unsupported(line, 'RUN --security');
      if (f.has('device')) unsupported(line, 'RUN --device');
      if (command.form === 'shell' && hasHeredoc(text)) unsupported(line, 'a heredoc (<<EOF) in RUN');
      return { kind: 'RUN', line, text, command, secrets };
    }
    case 'CMD':
    case 'ENTRYPOINT': {
      noFlags();
      const command = commandForm(args, line, keyword);
      if (!command) fail(line, `${keyword} needs a command, e.g. ${keyword} ["python3", "app.py"]`);
      return { kind: keyword, line, text, command };
    }
    case 'SHELL': {
      noFlags();
      const argv = jsonArray(args, line, 'SHELL');
      if (!argv || argv.length === 0) fail(line, 'SHELL needs a JSON array, e.g. SHELL ["/bin/bash", "-c"]');
      return { kind: 'SHELL', line, text, argv };
    }
    case 'COPY':
    case 'ADD':
      return copyOrAdd(keyword, args, flags, line, text);
    case 'ENV':
    case 'LABEL':
      noFlags();
      return { kind: keyword, line, text, pairs: nameValues(keyword, args, line, escape) };
    case 'MAINTAINER':
      noFlags();
      return { kind: 'LABEL', line, text, pairs: [['maintainer', literal(needArg('"Jane Doe <jane@example.com>"'), escape)]] };
    case 'ARG': {
      noFlags();
      const words = parseWords(args, escape);
      if (words.length === 0) fail(line, 'ARG needs a name, e.g. ARG VERSION=1.0');
      return {
        kind: 'ARG',
        line,
        text,
        args: words.map((w) => {
          const eq = w.indexOf('=');
          if (eq === 0) fail(line, `ARG names cannot be blank ("${w}")`);
          return eq < 0 ? { name: w } : { name: w.slice(0, eq), default: w.slice(eq + 1) };
        }),
      };
    }
    case 'WORKDIR':
      noFlags();
      return { kind: 'WORKDIR', line, text, path: needArg('/app') };
    case 'USER':
      noFlags();
      return { kind: 'USER', line, text, user: needArg('app or USER 1000:1000') };
    case 'STOPSIGNAL':
      noFlags();
      return { kind: 'STOPSIGNAL', line, text, signal: needArg('SIGTERM') };
    case 'EXPOSE':
      noFlags();
      return { kind: 'EXPOSE', line, text, ports: splitWhitespace(needArg('8080 or EXPOSE 53/udp')) };
    case 'VOLUME': {
      noFlags();
      const paths = jsonArray(args, line, 'VOLUME') ?? splitWhitespace(args);
      if (paths.length === 0) fail(line, 'VOLUME needs a path, e.g. VOLUME /data');
      if (paths.some((p) => trimSpace(p) === '')) fail(line, 'VOLUME paths cannot be empty strings');
      return { kind: 'VOLUME', line, text, paths };
    }
    case 'HEALTHCHECK':
      return healthcheck(args, flags, line, text);
    case 'ONBUILD':
      noFlags();
      return onbuild(args, line, text, escape);
    default:
      throw new Error(`unhandled instruction ${keyword}`);
  }
}

const STAGE_NAME = /^[a-z][a-z0-9\-_.]*$/;

export function parseDockerfile(text: string): Dockerfile {
  const { escape, lines } = readLines(text);
  if (lines.length === 0) fail(1, 'the Dockerfile has no instructions; start it with FROM <image>, e.g. FROM debian:bookworm-slim');
  const df: Dockerfile = { escape, globalArgs: [], stages: [] };
  const names = new Map<string, number>();
  for (const l of lines) {
    const { keyword, flags, args } = splitCommand(l.text);
    const k = keyword.toUpperCase();
    const instrText = trimSpace(l.text);
    if (!KEYWORDS.includes(k)) {
      fail(l.line, `unknown instruction "${keyword}"; instructions are ${KEYWORDS.join(', ')} (check the spelling, or a missing \\ on the line before)`);
    }
    if (k === 'FROM') {
      const f = parseFlags('FROM', l.line, flags, { platform: 'string' });
      const words = splitWhitespace(args);
      let name: string | undefined;
      if (words.length === 3 && words[1]!.toLowerCase() === 'as') {
        name = words[2]!.toLowerCase();
        if (!STAGE_NAME.test(name)) {
          fail(l.line, `"${words[2]}" is not a valid stage name; start it with a letter and use only letters, digits, -, _ and .`);
        }
        const prev = names.get(name);
        if (prev !== undefined) fail(l.line, `the stage name "${name}" is already used on line ${prev}; give each stage its own name`);
        names.set(name, l.line);
      } else if (words.length !== 1) {
        fail(l.line, 'FROM needs an image and optionally AS <name>, e.g. FROM debian:bookworm-slim AS build');
      }
      const stage: Stage = { index: df.stages.length, from: words[0]!, line: l.line, instructions: [] };
      if (name !== undefined) stage.name = name;
      const platform = one(f, 'platform');
      if (platform !== undefined) stage.platform = platform;
      df.stages.push(stage);
      continue;
    }
    const stage = df.stages[df.stages.length - 1];
    if (!stage && k !== 'ARG') fail(l.line, `${k} comes before the first FROM; only ARG may come before FROM`);
    const ins = instruction(k, flags, args, l.line, instrText, escape);
    if (stage) stage.instructions.push(ins);
    else if (ins.kind === 'ARG') df.globalArgs.push(...ins.args);
  }
  if (df.stages.length === 0) fail(1, 'the Dockerfile has no FROM; add FROM <image>, e.g. FROM debian:bookworm-slim');
  return df;
}
