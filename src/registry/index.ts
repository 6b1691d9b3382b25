export { Registry, createRegistry, type RegistryOptions, type GcResult } from './registry.js';
export { writeDockerConfig, type DockerConfigResult } from './docker-config.js';
export { MT as MEDIA_TYPES } from './manifests.js';
export type { LocalImageStore } from '../shared/image-store.js';
export { DEFAULT_MIRROR_UPSTREAM, type PullThroughOptions } from './pull-through.js';
export { MIRROR_PREFIX } from './auth.js';
