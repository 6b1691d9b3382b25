/**
 * Output rules: `--json` prints only JSON on stdout; tables and messages are
 * plain lines; colour only on a TTY without NO_COLOR.
 */
export class Output {
  readonly color: boolean;

  constructor(
    readonly json: boolean,
    private readonly stdout: NodeJS.WriteStream = process.stdout,
    private readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {
    this.color = Boolean(stdout.isTTY) && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
  }

  get isTTY(): boolean {
    return Boolean(this.stdout.isTTY);
  }

  /** Print a result: JSON with --json, otherwise the human rendering. */
  result(value: unknown, human: () => void): void {
    if (this.json) this.stdout.write(JSON.stringify(value, null, 2) + '\n');
    else human();
  }

  line(text = ''): void {
    this.stdout.write(text + '\n');
  }

  /** Progress and notices: stderr, so stdout stays parseable. */
  info(text: string): void {
    if (!this.json) this.stderr.write(text + '\n');
  }

  warn(text: string): void {
    this.stderr.write((this.color ? '\x1b[33mWarning:\x1b[0m ' : 'Warning: ') + text + '\n');
  }

  error(text: string): void {
    this.stderr.write((this.color ? '\x1b[31mError:\x1b[0m ' : 'Error: ') + text + '\n');
  }

  table(headers: string[], rows: Array<Array<string | number | null | undefined>>): void {
    const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '' : String(c))));
    const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
    const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
    this.line(fmt(headers.map((h) => (this.color ? h : h))));
    for (const r of cells) this.line(fmt(r));
  }
}
