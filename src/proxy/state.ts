/** Exchange phases. */
export const ACQUIRE = 0; // waiting for a machine (queue, autostart)
export const CONNECT = 1; // machine connection opening; nothing sent yet
export const WAIT = 2; // request sent (body may still stream), no response head yet
export const BODY = 3; // response head sent to the client, body streaming
export const TUNNEL = 4; // upgraded: bytes spliced both ways
export const DONE = 5;

/** Response body framing. */
export const NONE = 0;
export const LENGTH = 1;
export const CHUNKED = 2;
export const CLOSE = 3;
