export { Volumes, type VolumeRecord, type SnapshotRecord, type CreateVolumeInput, type VolumesOptions } from './volumes.js';
export { mountPathProblem, normaliseMountPath, volumeName, sizeGb, VOLUME_NAME, MIN_SIZE_GB, MAX_SIZE_GB, DEFAULT_SIZE_GB } from './validate.js';
