import type { Command } from '../command.js';
import { deployCommands } from './deploy.js';
import { daemonCommands } from './daemon.js';
import { authCommands } from './auth.js';
import { accountCommands } from './accounts.js';
import { machineCommands } from './machines.js';
import { logCommands } from './logs.js';
import { secretCommands } from './secrets.js';
import { volumeCommands } from './volumes.js';
import { registryCommands } from './registry.js';
import { sbomCommands } from './sbom.js';

/**
 * Every CLI command; each component's commands live in their own module.
 * The order is the order of `hangar help`: the everyday workflow first.
 */
export const allCommands: Command[] = [
  ...deployCommands,
  ...machineCommands,
  ...logCommands,
  ...secretCommands,
  ...volumeCommands,
  ...accountCommands,
  ...authCommands,
  ...registryCommands,
  ...sbomCommands,
  ...daemonCommands,
];
