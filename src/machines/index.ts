export { MachineManager, type MachineManagerOptions } from './manager.js';
export { MachineRecords, type MachineRecord, type MachineState, type MachineEvent, type ImageRef } from './records.js';
export * from './config.js';
export type * from './runtime.js';
