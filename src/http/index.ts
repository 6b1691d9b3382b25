export { Router, type Handler, type Params, type RequestContext } from './router.js';
export { readJson, sendJson, bearerToken } from './body.js';
