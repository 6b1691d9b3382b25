export { Accounts, SYSTEM_ORG_PREFIX, type App, type Org, type Principal, type TokenInfo } from './accounts.js';
export { checkName } from './names.js';
