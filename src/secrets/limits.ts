import { z } from 'zod';
import { ENV_NAME } from '../machines/config.js';

/** One value: more than any sane credential, well under the kernel's 128 KiB per env string. */
export const MAX_VALUE_BYTES = 64 * 1024;
/** All of an app's secrets together: they travel as the app's environment. */
export const MAX_APP_BYTES = 1024 * 1024;
export const MAX_SECRETS_PER_APP = 500;
export const MAX_NAME_LENGTH = 256;

export const secretName = z
  .string()
  .max(MAX_NAME_LENGTH, `must be at most ${MAX_NAME_LENGTH} characters`)
  .regex(ENV_NAME, 'is not a valid environment variable name (letters, digits and _, not starting with a digit)');

export const secretValue = z
  .string()
  .refine((v) => Buffer.byteLength(v) <= MAX_VALUE_BYTES, `is larger than the ${MAX_VALUE_BYTES / 1024} KiB limit for one secret`)
  .refine((v) => !v.includes('\0'), 'contains a NUL byte, which environment variables cannot carry');
