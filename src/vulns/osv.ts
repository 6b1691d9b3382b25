import { z } from 'zod';

/** The parts of the OSV schema (https://ossf.github.io/osv-schema/) Hangar reads; unknown fields pass through. */
const Event = z
  .object({ introduced: z.string().optional(), fixed: z.string().optional(), last_affected: z.string().optional(), limit: z.string().optional() })
  .passthrough();
const Range = z.object({ type: z.string(), events: z.array(Event) }).passthrough();
const SeverityEntry = z.object({ type: z.string(), score: z.string() }).passthrough();
const Affected = z
  .object({
    package: z.object({ ecosystem: z.string().min(1), name: z.string().min(1), purl: z.string().optional() }).passthrough().optional(),
    ranges: z.array(Range).nullish(),
    versions: z.array(z.string()).nullish(),
    severity: z.array(SeverityEntry).nullish(),
    ecosystem_specific: z.record(z.string(), z.unknown()).nullish(),
    database_specific: z.record(z.string(), z.unknown()).nullish(),
  })
  .passthrough();

export const OsvRecordSchema = z
  .object({
    id: z.string().min(1),
    modified: z.string().min(1),
    withdrawn: z.string().nullish(),
    aliases: z.array(z.string()).nullish(),
    upstream: z.array(z.string()).nullish(),
    summary: z.string().nullish(),
    details: z.string().nullish(),
    severity: z.array(SeverityEntry).nullish(),
    affected: z.array(Affected).nullish(),
    database_specific: z.record(z.string(), z.unknown()).nullish(),
  })
  .passthrough();

export type OsvRecord = z.infer<typeof OsvRecordSchema>;
export type OsvAffected = z.infer<typeof Affected>;
export type OsvRange = z.infer<typeof Range>;
export type OsvEvent = z.infer<typeof Event>;
