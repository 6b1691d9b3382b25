export { appConfigSchema, parseMemoryMb, VM_SIZES, STRATEGIES, type AppConfig, type AppConfigInput, type Strategy } from './schema.js';
export { loadAppConfig, parseAppConfig, findConfigFile, describeKeyReport, CONFIG_FILES, type LoadedAppConfig } from './load.js';
export { classifyKeys, type KeyReport } from './keys.js';
export { machineConfigFor, processGroups, resolveLocalFiles, checksOf, DEFAULT_GROUP, type ResolvedCheck, type MachineConfigOptions } from './machines.js';
export { shellSplit } from './shellwords.js';
