/**
 * Milliseconds for the proxy's timeouts and idle bookkeeping, read from the
 * system clock once per socket read (tick()) instead of at every place a
 * request stamps a time (some eight per request): everything a request
 * does runs within a read callback, so the cached value is microseconds
 * old there. Timer and promise callbacks call tick() themselves.
 */
export const clock = { now: Date.now() };

export function tick(): number {
  return (clock.now = Date.now());
}
