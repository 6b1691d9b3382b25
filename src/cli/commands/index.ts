import type { Command } from '../command.js';
import { daemonCommands } from './daemon.js';
import { authCommands } from './auth.js';
import { accountCommands } from './accounts.js';

/** Every CLI command; each component's commands live in their own module. */
export const allCommands: Command[] = [...daemonCommands, ...authCommands, ...accountCommands];
