export { Deployer, groupOf, type DeployerOptions, type DeployRequest, type DeployEvent } from './deployer.js';
export { Releases, type Release, type ReleaseStatus } from './releases.js';
export { resolveDeployImage, pullThroughMirror, type ResolvedDeployImage, type DeployImageStore, type MirrorPullThrough } from './images.js';
export { runCheck } from './checks.js';
