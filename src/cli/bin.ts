import { runCli } from './entry.js';

runCli(process.argv.slice(2), 'compiled');
