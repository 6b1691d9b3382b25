import type { IncomingMessage } from 'node:http';
import type { Accounts, Principal } from '../accounts/index.js';
import { bearerToken } from '../http/index.js';

/** Authenticate an API request from its `Authorization: Bearer` header. */
export function principalOf(accounts: Accounts, req: IncomingMessage): Principal {
  return accounts.authenticate(bearerToken(req));
}
