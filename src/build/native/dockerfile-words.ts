/**
 * Word handling for the Dockerfile front end: the error types, Docker's
 * build-time word expansion (BuildKit's shell lexer: quotes, escapes,
 * `$VAR`, `${VAR...}` modifiers), and the parse-time splitters Docker uses
 * for flags and for ENV/LABEL/ARG words (those keep quotes; expansion
 * removes them later). Behaviour follows moby/buildkit's
 * frontend/dockerfile/shell/lex.go and parser/line_parsers.go so that a
 * Dockerfile means the same thing here as under `docker build`.
 */

/** A Dockerfile that is wrong. `message` is complete (it starts with `Dockerfile line N:` when line > 0). */
export class DockerfileError extends Error {
  override name = 'DockerfileError';
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message);
  }
}

/** A feature the native builder does not implement; the caller falls back to buildah and prints `reason`. */
export class UnsupportedFeature extends Error {
  override name = 'UnsupportedFeature';
  constructor(
    readonly reason: string,
    readonly line: number,
  ) {
    super(line > 0 ? `Dockerfile line ${line}: ${reason}` : reason);
  }
}

export type Lookup = (name: string) => string | undefined;

/** Go's unicode.IsSpace (JS \s differs: it has U+FEFF and lacks U+0085). */
export function isSpace(c: string): boolean {
  return c === '\u0085' || (c !== '\ufeff' && /^\s$/u.test(c));
}

export function trimLeft(s: string): string {
  let i = 0;
  while (i < s.length && isSpace(s[i]!)) i++;
  return s.slice(i);
}

/** Go's strings.TrimSpace. */
export function trimSpace(s: string): string {
  let end = s.length;
  while (end > 0 && isSpace(s[end - 1]!)) end--;
  return trimLeft(s.slice(0, end));
}

const isDigit = (c: string) => /^\p{Nd}$/u.test(c);
const isLetter = (c: string) => /^\p{L}$/u.test(c);

/** Raised inside the lexer; turned into a DockerfileError naming the word. */
class LexFailure extends Error {}

interface LexMode {
  escape: string;
  rawQuotes: boolean;
  rawEscapes: boolean;
  /** Leave unset variables as written (used only to find heredoc words). */
  skipUnset: boolean;
}

/** Collects ProcessWords' split: text from `$` expansions splits on spaces, quoted and escaped text does not. */
class Words {
  private word = '';
  private inWord = false;
  private readonly words: string[] = [];
  addChar(c: string): void {
    if (isSpace(c)) {
      if (this.inWord && this.word.length > 0) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
    } else this.addRaw(c);
  }
  addRaw(s: string): void {
    this.word += s;
    this.inWord = true;
  }
  addString(s: string): void {
    for (const c of s) this.addChar(c);
  }
  get(): string[] {
    if (this.word.length > 0) {
      this.words.push(this.word);
      this.word = '';
      this.inWord = false;
    }
    return this.words;
  }
}

class ShellWord {
  private pos = 0;
  private readonly chars: string[];
  private rawEscapes: boolean;

  constructor(
    source: string,
    private readonly lookup: Lookup,
    private readonly mode: LexMode,
  ) {
    this.chars = Array.from(source);
    this.rawEscapes = mode.rawEscapes;
  }

  private peek(): string | undefined {
    return this.chars[this.pos];
  }
  private next(): string | undefined {
    const c = this.chars[this.pos];
    if (c !== undefined) this.pos++;
    return c;
  }

  processStopOn(stop: string | undefined, rawEscapes: boolean): [string, string[]] {
    const saved = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    try {
      let result = '';
      const words = new Words();
      for (let ch = this.peek(); ch !== undefined; ch = this.peek()) {
        if (stop !== undefined && ch === stop) {
          this.next();
          return [result, words.get()];
        }
        if (ch === '$') {
          const t = this.dollar();
          result += t;
          words.addString(t);
          continue;
        }
        if (ch === '<' || ch === "'" || ch === '"') {
          const t = ch === '<' ? this.possibleHeredoc() : ch === "'" ? this.singleQuote() : this.doubleQuote();
          result += t;
          words.addRaw(t);
          continue;
        }
        let c = this.next()!;
        if (c === this.mode.escape) {
          if (this.rawEscapes) {
            words.addRaw(c);
            result += c;
          }
          const n = this.next();
          if (n === undefined) break; // an escape at the end is dropped
          c = n;
          words.addRaw(c);
        } else words.addChar(c);
        result += c;
      }
      if (stop !== undefined) throw new LexFailure(`unexpected end of statement while looking for matching ${stop}`);
      return [result, words.get()];
    } finally {
      this.rawEscapes = saved;
    }
  }

  /** `<<` keeps the blanks after it in its word, so `<< EOF` is one heredoc word (BuildKit does the same). */
  private possibleHeredoc(): string {
    this.next();
    if (this.peek() !== '<') return '<';
    this.next();
    let t = '<<';
    for (let c = this.peek(); c === ' ' || c === '\t' || c === '\r'; c = this.peek()) t += this.next();
    return t;
  }

  private singleQuote(): string {
    let result = this.mode.rawQuotes ? "'" : '';
    this.next();
    for (;;) {
      const c = this.next();
      if (c === undefined) throw new LexFailure('unexpected end of statement while looking for matching single-quote');
      if (c === "'") return this.mode.rawQuotes ? result + c : result;
      result += c;
    }
  }

  private doubleQuote(): string {
    let result = this.mode.rawQuotes ? '"' : '';
    this.next();
    for (;;) {
      const p = this.peek();
      if (p === undefined) throw new LexFailure('unexpected end of statement while looking for matching double-quote');
      if (p === '"') {
        this.next();
        return this.mode.rawQuotes ? result + '"' : result;
      }
      if (p === '$') {
        result += this.dollar();
        continue;
      }
      let c = this.next()!;
      if (c === this.mode.escape) {
        if (this.rawEscapes) result += c;
        const n = this.peek();
        if (n === undefined) continue;
        // Inside double quotes only ", $ and the escape itself can be escaped; otherwise the escape stays.
        if (n === '"' || n === '$' || n === this.mode.escape) c = this.next()!;
      }
      result += c;
    }
  }

  private get(name: string): string | undefined {
    return this.lookup(name);
  }

  private dollar(): string {
    this.next();
    if (this.peek() !== '{') {
      const name = this.name();
      if (name === '') return '$';
      const v = this.get(name);
      if (v === undefined && this.mode.skipUnset) return '$' + name;
      return v ?? '';
    }
    this.next();
    const first = this.peek();
    if (first === undefined) throw new LexFailure("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new LexFailure('syntax error: bad substitution');
    const name = this.name();
    let ch = this.next();
    if (ch === undefined) throw new LexFailure("syntax error: missing '}'");
    let chs = ch;
    if (ch === '}') {
      const v = this.get(name);
      if (v === undefined && this.mode.skipUnset) return `\${${name}}`;
      return v ?? '';
    }
    if (ch === '/') return this.replace(name);
    let nullIsUnset = false;
    if (ch === ':') {
      nullIsUnset = true;
      ch = this.next();
      if (ch === undefined) throw new LexFailure("syntax error: missing '}'");
      chs += ch;
    } else if (!'+-?#%'.includes(ch)) {
      throw new LexFailure(`unsupported modifier (${chs}) in substitution`);
    }
    let word: string;
    try {
      word = this.processStopOn('}', ch === '#' || ch === '%')[0];
    } catch (e) {
      if (e instanceof LexFailure && this.peek() === undefined) throw new LexFailure("syntax error: missing '}'");
      throw e;
    }
    const value = this.get(name);
    if (value === undefined && this.mode.skipUnset) return `\${${name}${chs}${word}}`;
    const unset = value === undefined || (nullIsUnset && value === '');
    switch (ch) {
      case '-':
        return unset ? word : value!;
      case '+':
        return unset ? '' : word;
      case '?':
        if (value === undefined) throw new LexFailure(`${name}: ${word || 'is not allowed to be unset'}`);
        if (unset) throw new LexFailure(`${name}: ${word || 'is not allowed to be empty'}`);
        return value;
      case '%':
      case '#': {
        // `%`/`#` trim the shortest match, `%%`/`##` the longest.
        const greedy = word.startsWith(ch);
        if (greedy) word = word.slice(1);
        return ch === '%' ? trimSuffix(word, value ?? '', greedy) : trimPrefix(word, value ?? '', greedy);
      }
      default:
        throw new LexFailure(`unsupported modifier (${chs}) in substitution`);
    }
  }

  /** `${VAR/pattern/replacement}` and `${VAR//pattern/replacement}`. */
  private replace(name: string): string {
    const all = this.peek() === '/';
    if (all) this.next();
    const part = (stop: string, missing: string): string => {
      try {
        return this.processStopOn(stop, true)[0];
      } catch (e) {
        if (e instanceof LexFailure && this.peek() === undefined) throw new LexFailure(missing);
        throw e;
      }
    };
    const pattern = part('/', "syntax error: missing '/' in ${}");
    const replacement = part('}', "syntax error: missing '}'");
    const value = this.get(name);
    if (value === undefined && this.mode.skipUnset) return `\${${name}/${pattern}/${replacement}}`;
    const re = shellPattern(pattern, true, false, all);
    return (value ?? '').replace(re, () => replacement);
  }

  private name(): string {
    let name = '';
    for (let c = this.peek(); c !== undefined; c = this.peek()) {
      if (name === '' && isDigit(c)) {
        while (this.peek() !== undefined && isDigit(this.peek()!)) name += this.next();
        return name;
      }
      if (name === '' && '@*#?-$!0'.includes(c)) return this.next()!;
      if (!isLetter(c) && !isDigit(c) && c !== '_') break;
      name += this.next();
    }
    return name;
  }
}

/** A shell wildcard pattern (`*`, `?`, `\` escapes; no brackets) as a regular expression, as BuildKit converts it. */
function shellPattern(pattern: string, greedy: boolean, anchored: boolean, global = false): RegExp {
  const chars = Array.from(pattern);
  let out = anchored ? '^' : '';
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '*') out += greedy ? '.*' : '.*?';
    else if (c === '?') out += '.';
    else if (c === '\\') {
      // `\}` and `\/` only protect the ${} syntax; the backslash is not part of the pattern.
      if (chars[i + 1] === '}' || chars[i + 1] === '/') continue;
      const n = chars[++i];
      if (n !== '*' && n !== '?' && n !== '\\') {
        throw new LexFailure(`invalid pattern (${pattern}) in substitution: invalid escape '\\${n ?? ''}'`);
      }
      out += '\\' + n;
    } else if ('[]{}.+()|^$'.includes(c)) out += '\\' + c;
    else out += c;
  }
  return new RegExp(out, global ? 'gu' : 'u');
}

function trimPrefix(pattern: string, value: string, greedy: boolean): string {
  const m = shellPattern(pattern, greedy, true).exec(value);
  return m ? value.slice(m.index + m[0].length) : value;
}

/** Shortest/longest rightmost match: reverse pattern (keeping escapes in front) and value, then trim a prefix. */
function trimSuffix(pattern: string, value: string, greedy: boolean): string {
  const p = Array.from(pattern);
  const rev: string[] = [];
  for (let i = 0; i < p.length; ) {
    if (p[i] === '\\' && i !== p.length - 1) {
      rev.unshift(p[i]!, p[i + 1]!);
      i += 2;
    } else rev.unshift(p[i++]!);
  }
  const reverse = (s: string) => Array.from(s).reverse().join('');
  return reverse(trimPrefix(rev.join(''), reverse(value), greedy));
}

function lex(source: string, lookup: Lookup, mode: LexMode): [string, string[]] {
  try {
    return new ShellWord(source, lookup, mode).processStopOn(undefined, mode.rawEscapes);
  } catch (e) {
    if (e instanceof LexFailure) {
      throw new DockerfileError(`cannot expand ${JSON.stringify(source)}: ${e.message}; check its quotes and \${...} braces`, 0);
    }
    throw e;
  }
}

/**
 * Docker's expansion of one word at build time (BuildKit's ProcessWord): quotes
 * removed, escapes applied, variables substituted; whitespace is kept. Throws
 * DockerfileError with line 0 (the caller knows the instruction's line).
 */
export function expandWord(word: string, lookup: Lookup, escape: '\\' | '`' = '\\'): string {
  return lex(word, lookup, { escape, rawQuotes: false, rawEscapes: false, skipUnset: false })[0];
}

/**
 * Same, then split into words as Docker does (ProcessWords): text that came from
 * a variable splits on whitespace, quoted or escaped whitespace does not, and
 * empty words are dropped.
 */
export function expandWords(text: string, lookup: Lookup, escape: '\\' | '`' = '\\'): string[] {
  return lex(text, lookup, { escape, rawQuotes: false, rawEscapes: false, skipUnset: false })[1];
}

const HEREDOC = /^(\d*)<<(-?)[\t\n\f\r ]*([^<]*)$/;

/** Whether a RUN/COPY/ADD shell-form line opens a heredoc, found the way BuildKit's parser finds one. */
export function hasHeredoc(line: string): boolean {
  if (!line.includes('<<')) return false;
  const none: Lookup = () => undefined;
  let words: string[];
  try {
    words = lex(line, none, { escape: '\\', rawQuotes: true, rawEscapes: true, skipUnset: true })[1];
  } catch {
    return false;
  }
  for (const w of words) {
    const m = HEREDOC.exec(w);
    if (!m || m[3] === '') continue;
    try {
      if (lex(m[3]!, none, { escape: '\\', rawQuotes: false, rawEscapes: false, skipUnset: true })[1].length === 1) return true;
    } catch {
      return true; // BuildKit rejects the line; buildah will say why
    }
  }
  return false;
}

/**
 * Docker's split of ENV/LABEL/ARG arguments into words: whitespace separates,
 * quotes group, and quotes and escapes stay in the word (expansion removes them).
 */
export function parseWords(rest: string, escape: string): string[] {
  const words: string[] = [];
  const chars = Array.from(rest);
  let word = '';
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= chars.length; pos++) {
    const end = pos === chars.length;
    let ch = chars[pos] ?? '';
    if (phase === 'spaces') {
      if (end) break;
      if (isSpace(ch)) continue;
      phase = 'word';
    }
    if (end) {
      if (blankOK || word.length > 0) words.push(word);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
      }
      if (ch === escape) {
        if (pos + 1 === chars.length) continue;
        word += ch;
        ch = chars[++pos]!;
      }
      word += ch;
      continue;
    }
    // in a quote
    if (ch === quote) phase = 'word';
    if (ch === escape && quote !== "'") {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      word += ch;
      ch = chars[++pos]!;
    }
    word += ch;
  }
  return words;
}

/**
 * Splits leading `--flag[=value]` words off an instruction's arguments, as
 * Docker does for every instruction (quotes removed, `\` escapes; a bare `--`
 * ends the flags). Returns the flags and the remaining arguments.
 */
export function extractFlags(line: string): { flags: string[]; rest: string } {
  const flags: string[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= line.length; pos++) {
    const end = pos === line.length;
    let ch = line[pos] ?? '';
    if (phase === 'spaces') {
      if (end) break;
      if (isSpace(ch)) continue;
      if (ch !== '-' || line[pos + 1] !== '-') return { flags, rest: line.slice(pos) };
      phase = 'word';
    }
    if (end) {
      if (word !== '--' && (blankOK || word.length > 0)) flags.push(word);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (word === '--') return { flags, rest: line.slice(pos) };
        if (blankOK || word.length > 0) flags.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
        continue;
      }
      if (ch === '\\') {
        if (pos + 1 === line.length) continue;
        ch = line[++pos]!;
      }
      word += ch;
      continue;
    }
    if (ch === quote) {
      phase = 'word';
      continue;
    }
    if (ch === '\\') {
      if (pos + 1 === line.length) {
        phase = 'word';
        continue;
      }
      ch = line[++pos]!;
    }
    word += ch;
  }
  return { flags, rest: '' };
}
