/**
 * Runs buildTree() in a worker thread: unpacking does many small synchronous
 * file-system calls, which must not stall the daemon's event loop (API,
 * proxy). The main thread resolves the image; the worker only reads blobs.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HangarError } from '../shared/errors.js';
import { buildTree, type BuildTreeOptions, type ResolvedImage } from './convert.js';
import { FileBlobSource, type ImageSource, type SourceSpec } from './source.js';
import { RegistrySource } from './registry-client.js';

export interface WorkerInput {
  spec: SourceSpec;
  image: ResolvedImage;
  root: string;
  options: Omit<BuildTreeOptions, 'signal'>;
}

export type WorkerOutput =
  | { ok: true; stats: Record<string, number> }
  | { ok: false; error: { code: string; message: string; status: number; detail?: unknown } };

const input = workerData as WorkerInput;
const source: ImageSource =
  input.spec.kind === 'files'
    ? new FileBlobSource(input.spec.name, input.spec.paths)
    : new RegistrySource(input.spec.registry, input.spec.repo, { credentials: input.spec.credentials, authHeader: input.spec.authHeader });

let out: WorkerOutput;
try {
  out = { ok: true, stats: await buildTree(source, input.image, input.root, input.options) };
} catch (e) {
  const err =
    e instanceof HangarError
      ? { code: e.code, message: e.message, status: e.status, detail: e.detail }
      : { code: 'INTERNAL', message: `unpacking failed: ${e instanceof Error ? e.message : String(e)}`, status: 500 };
  out = { ok: false, error: err };
}
parentPort!.postMessage(out);
