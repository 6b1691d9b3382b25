export { startDaemon, parseListen, type Daemon, type DaemonOptions, type Mount } from './daemon.js';
