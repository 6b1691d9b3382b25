export { LogStore, MAX_LINE_BYTES, type LogLine, type LogQuery, type LogStream } from './log-store.js';
