import { posix } from 'node:path';

/**
 * .dockerignore, with Docker's rules (moby/patternmatcher): one pattern a
 * line, `#` comments, `!` re-includes, `*` and `?` stay within one path
 * segment, `**` spans any number of segments, a pattern that matches a
 * directory excludes everything below it, and the last matching line wins.
 */
interface Rule {
  negate: boolean;
  re: RegExp;
  /** Literal leading directories, to skip walking into dirs exceptions cannot reach. */
  source: string;
}

export class DockerIgnore {
  private readonly rules: Rule[];

  constructor(text: string) {
    this.rules = [];
    for (let line of text.split(/\r?\n/)) {
      line = line.trim();
      if (!line || line.startsWith('#')) continue;
      let negate = false;
      if (line.startsWith('!')) {
        negate = true;
        line = line.slice(1).trim();
      }
      let p = posix.normalize(line.replace(/\\(?![*?[\\])/g, '/'));
      p = p.replace(/^\/+/, '').replace(/\/+$/, '');
      if (p === '.' || p === '') {
        // "." or "/" means the whole context.
        this.rules.push({ negate, re: /^.*$/, source: p });
        continue;
      }
      this.rules.push({ negate, re: compile(p), source: p });
    }
  }

  get hasExceptions(): boolean {
    return this.rules.some((r) => r.negate);
  }

  /** Is `path` (relative, `/`-separated) excluded from the context? */
  ignores(path: string): boolean {
    const parents = parentsOf(path);
    let excluded = false;
    for (const rule of this.rules) {
      if (rule.negate === !excluded) continue; // cannot change the outcome
      const hit = rule.re.test(path) || parents.some((p) => rule.re.test(p));
      if (hit) excluded = !rule.negate;
    }
    return excluded;
  }

  /**
   * May a directory that is itself excluded still contain re-included
   * files? (Then the walk must go into it and check each entry.)
   */
  mayReinclude(dir: string): boolean {
    return this.rules.some((r) => r.negate && (r.source.startsWith(dir + '/') || r.source.includes('*') || r.source.includes('?') || r.source.includes('[')));
  }
}

function parentsOf(path: string): string[] {
  const parts = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join('/'));
  return out;
}

function compile(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        // `**`: any number of segments. `**/` may match nothing at all.
        i++;
        if (pattern[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += escape(pattern[++i]!);
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end === -1) {
        re += '\\[';
        continue;
      }
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('!') || cls.startsWith('^')) cls = '^' + cls.slice(1);
      re += `[${cls.replace(/\\/g, '\\\\').replace(/\//g, '')}]`;
      i = end;
    } else re += escape(c);
  }
  return new RegExp(re + '$');
}

const escape = (c: string) => c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
