/**
 * rootfs: OCI image → read-only EROFS root filesystem, cached by manifest digest.
 * See docs/rootfs.md.
 */
export { RootfsCache } from './cache.js';
export type { RootfsCacheOptions, AcquireOptions, AcquiredRootfs, RootfsLease, InspectResult } from './cache.js';
export { parseImageReference, formatReference } from './reference.js';
export type { ImageReference } from './reference.js';
export type { ResolvedImage, ConvertLimits } from './convert.js';
export type { ImageConfig, Platform, Descriptor } from './manifest.js';
export type { Credentials } from './registry-client.js';
