import type { ParseArgsConfig } from 'node:util';
import type { ApiClient } from './client.js';
import type { Output } from './output.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface CommandContext {
  /** Positional arguments after the command path. */
  args: string[];
  /** Parsed flags (including the global ones). */
  flags: Record<string, string | boolean | string[] | undefined>;
  out: Output;
  /** Lazily created: commands that talk to the daemon call it. */
  api(): ApiClient;
}

export interface Command {
  /** e.g. ['apps', 'create'] */
  path: string[];
  aliases?: string[][];
  summary: string;
  usage: string;
  options?: OptionSpec;
  /** Stop flag parsing at the first positional (for `machine run IMAGE CMD...`). */
  passThroughAfterPositionals?: number;
  run(ctx: CommandContext): Promise<number | void> | number | void;
}
