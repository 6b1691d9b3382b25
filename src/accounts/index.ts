export { Accounts, type App, type Org, type Principal, type TokenInfo } from './accounts.js';
export { checkName } from './names.js';
