const APP_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * The app a Host header names: `<app>.<domain>`, with or without a port
 * (`myapp.localhost:8080`) and a trailing dot. Anything else → undefined.
 */
export function appFromHost(host: string | undefined, domain: string): string | undefined {
  if (!host || host.startsWith('[')) return undefined;
  let h = host.toLowerCase();
  const colon = h.indexOf(':');
  if (colon >= 0) {
    if (!/^\d{1,5}$/.test(h.slice(colon + 1))) return undefined;
    h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  const suffix = '.' + domain.toLowerCase();
  if (!h.endsWith(suffix)) return undefined;
  const app = h.slice(0, -suffix.length);
  return APP_NAME.test(app) ? app : undefined;
}
