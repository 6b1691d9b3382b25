export { createProxy, type Proxy, type ProxyOptions } from './server.js';
export { machineBackends, type MachineBackendsOptions } from './machines-adapter.js';
export { appFromHost } from './host.js';
export type { ProxyBackends, BackendMachine, ProxyService, ProxyCheck } from './types.js';
