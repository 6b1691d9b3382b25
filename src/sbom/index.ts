/**
 * SBOM: list what is installed in an image (OS packages from dpkg/apk/rpm
 * databases, npm and Python packages) straight from its layers or an
 * unpacked tree, and render it as SPDX 2.3 or CycloneDX 1.5 JSON.
 */
import type { LocalImageStore } from '../shared/image-store.js';
import { viewFromDirectory } from './directory.js';
import { resolveImage, type Platform } from './image.js';
import { buildInventory, type InventoryOptions } from './inventory.js';
import { viewFromLayers, type LayerSource } from './layers.js';
import { SbomStore } from './store.js';
import type { Inventory } from './types.js';

export type { Distro, Inventory, Package, PackageType } from './types.js';
export type { LayerSource } from './layers.js';
export type { InventoryOptions } from './inventory.js';
export type { Platform, ResolvedImage } from './image.js';
export type { SbomFormat, SbomDocumentOptions } from './formats.js';
export { renderSbom, parseSbomFormat, toSpdx, toCycloneDx } from './formats.js';
export { purl, normalisePypiName, npmPurl } from './purl.js';
export { osvEcosystem, parseOsRelease } from './osrelease.js';
export { resolveImage } from './image.js';
export { SbomStore, CATALOG_VERSION } from './store.js';
export { readTar, type TarEntry } from './tar.js';
export { decompressStream } from './decompress.js';
export { inventoryFromSbomDocument, parsePurl, type ParsedPurl } from './from-document.js';

/** Inventory of an image given its layer tar streams (gzip/zstd/plain), bottom layer first. */
export async function inventoryFromLayers(layers: readonly LayerSource[], opts?: InventoryOptions): Promise<Inventory> {
  return buildInventory(await viewFromLayers(layers), opts);
}

/** Inventory of a flattened root filesystem directory. */
export async function inventoryFromDirectory(root: string, opts?: InventoryOptions): Promise<Inventory> {
  return buildInventory(await viewFromDirectory(root), { label: root, ...opts });
}

/**
 * Inventory of `repo:reference` in the local registry store, cached in
 * `cache` by the platform manifest digest (a second call reads one small file).
 */
export async function inventoryFromStore(
  store: LocalImageStore,
  repo: string,
  reference: string,
  opts: InventoryOptions & { cache?: SbomStore; platform?: Platform } = {},
): Promise<{ digest: string; inventory: Inventory; cached: boolean }> {
  const img = resolveImage(store, repo, reference, opts.platform);
  const compute = () => inventoryFromLayers(img.layers, { label: `image ${repo}@${img.digest}`, ...opts });
  if (!opts.cache) return { digest: img.digest, inventory: await compute(), cached: false };
  const r = await opts.cache.getOrCompute(img.digest, compute);
  return { digest: img.digest, ...r };
}
