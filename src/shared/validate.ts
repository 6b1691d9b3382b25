import { z } from 'zod';
import { HangarError } from './errors.js';

/**
 * Parse untrusted input (API bodies, config files, guest messages) with a zod
 * schema and turn the first problem into one readable error naming the key.
 */
export function parseInput<T extends z.ZodType>(schema: T, input: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.length ? issue.path.map(String).join('.') : '(root)';
  // A bad record key (e.g. an env var name) nests the real reason one level down.
  const nested = (issue as { issues?: Array<{ message: string }> }).issues?.[0]?.message;
  const message = issue.code === 'invalid_key' && nested ? `invalid key: ${nested}` : issue.message;
  throw new HangarError('BAD_REQUEST', `invalid ${what}: ${path}: ${message}`, {
    detail: result.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
  });
}
