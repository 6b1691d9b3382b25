/**
 * Runs one RootfsCache.acquire in its own process, for the cross-process and
 * crash tests: argv = dataDir layoutDir ref. Prints the result as JSON.
 */
import { RootfsCache } from '../../src/rootfs/index.js';
import { ociLayoutStore } from '../fixtures/oci-layout.js';

const [dataDir, layout, ref] = process.argv.slice(2) as [string, string, string];
const cache = new RootfsCache({ dataDir, localStore: ociLayoutStore(layout) });
process.stdout.write(JSON.stringify({ started: true }) + '\n');
const got = await cache.acquire(ref);
process.stdout.write(JSON.stringify({ digest: got.digest, converted: got.converted, imagePath: got.imagePath }) + '\n');
got.lease.release();
