export { Secrets, REDACTED, type SecretsOptions, type SecretInfo, type SecretsListing, type UpdateResult, type RestartOutcome } from './secrets.js';
export { SecretKey } from './crypto.js';
export { RedactingLogStore } from './redact.js';
export { restartStartedMachines } from './restart.js';
export { MAX_VALUE_BYTES, MAX_APP_BYTES, MAX_SECRETS_PER_APP, secretName, secretValue } from './limits.js';
