export { Builder, type BuilderOptions, type BuildRequest, type BuildResult, type BuildOutput } from './builder.js';
export { DockerIgnore } from './dockerignore.js';
export { planContext, contextTarStream, type ContextPlan, type ContextEntry } from './context.js';
export { deploymentTag, isValidLabel } from './tags.js';
export { seedMirror, ensureMirrorOwner, baseTarball, defaultCacheDir, MIRROR_NAMESPACE, BASE_IMAGES, type SeedResult } from './mirror.js';
export { RegistryPusher } from './push.js';
export { localBuild, dockerAvailable, dockerHubBases, type LocalBuildOptions, type LocalBuildResult } from './local.js';
