import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/*
 * Giving worker threads the listening socket, each as a descriptor of its own.
 *
 * Several libuv handles on one descriptor number would each close it: the
 * first close frees the number, the next closes whatever reused it. So each
 * worker gets a dup of the socket, made the only way Node can: SCM_RIGHTS
 * over a unix socket inside this process (what cluster does between
 * processes), with the pipe handles net.js is built on
 * (`process.binding('pipe_wrap')`, `stream_wrap`). The worker connects as an
 * IPC pipe, this thread sends the listening handle, and the worker's
 * net.Server listens on the handle it receives (and alone closes it).
 *
 * This thread's end of each connection is an accepted pipe whose descriptor
 * is re-wrapped as an IPC pipe to send with; the accepted wrapper is kept
 * (never read, never closed: closing it would close the descriptor twice),
 * one small object per worker for the life of the process.
 */

interface PipeHandle {
  fd: number;
  bind(path: string): number;
  listen(backlog: number): number;
  open(fd: number): number;
  connect(req: object, path: string): number;
  readStart(): number;
  readStop(): number;
  close(cb?: () => void): void;
  writeUtf8String(req: object, s: string, handle?: object): number;
  onconnection: ((status: number, client: PipeHandle) => void) | null;
  onread: ((buf?: ArrayBuffer) => void) | null;
  pendingHandle?: object | null;
}

interface PipeBinding {
  Pipe: new (type: number) => PipeHandle;
  PipeConnectWrap: new () => { oncomplete: (status: number) => void };
  constants: { SOCKET: number; SERVER: number; IPC: number };
}

function bindings(): { pipe: PipeBinding; WriteWrap: new () => { oncomplete: (status: number) => void; async: boolean } } {
  const b = process as unknown as { binding(name: string): unknown };
  const pipe = b.binding('pipe_wrap') as PipeBinding;
  const stream = b.binding('stream_wrap') as { WriteWrap: new () => { oncomplete: (status: number) => void; async: boolean } };
  if (typeof pipe?.Pipe !== 'function' || typeof pipe.PipeConnectWrap !== 'function' || typeof stream?.WriteWrap !== 'function') {
    throw new Error('this Node lacks the pipe handles proxy worker threads need to share the listening socket; run with one proxy thread');
  }
  return { pipe, WriteWrap: stream.WriteWrap };
}

const kept: PipeHandle[] = [];

/** This thread's side: hands `server`'s socket to each worker that connects to `path`, until closed. */
export interface ListenerOffer {
  path: string;
  close(): void;
}

export function offerListener(server: Server): ListenerOffer {
  const { pipe, WriteWrap } = bindings();
  const handle = (server as unknown as { _handle?: object | null })._handle;
  if (!handle) throw new Error('the proxy is not listening');
  const path = join(tmpdir(), `hangar-proxy-${process.pid}-${randomBytes(4).toString('hex')}.sock`);
  const srv = new pipe.Pipe(pipe.constants.SERVER);
  let err = srv.bind(path);
  if (err === 0) err = srv.listen(64);
  if (err !== 0) {
    srv.close();
    throw new Error(`cannot open ${path} to hand the listening socket to proxy workers (${err})`);
  }
  const senders: PipeHandle[] = [];
  srv.onconnection = (status, client) => {
    if (status !== 0) return;
    kept.push(client);
    const ipc = new pipe.Pipe(pipe.constants.IPC);
    if (ipc.open(client.fd) !== 0) return;
    senders.push(ipc);
    const req = new WriteWrap();
    req.async = false;
    req.oncomplete = () => {};
    ipc.writeUtf8String(req, 'L', handle);
  };
  return {
    path,
    close() {
      srv.close();
      for (const s of senders) s.close();
      rmSync(path, { force: true });
    },
  };
}

/** A worker's side: connects to `path` and resolves with the listening handle (for net.Server.listen). */
export function receiveListener(path: string): Promise<object> {
  const { pipe } = bindings();
  return new Promise((resolve, reject) => {
    const p = new pipe.Pipe(pipe.constants.IPC);
    const req = new pipe.PipeConnectWrap();
    req.oncomplete = (status) => {
      if (status !== 0) return reject(new Error(`cannot connect to ${path} for the listening socket (${status})`));
      p.onread = () => {
        const h = p.pendingHandle;
        if (!h) return;
        p.pendingHandle = null;
        p.readStop();
        p.close();
        resolve(h);
      };
      p.readStart();
    };
    const err = p.connect(req, path);
    if (err !== 0) reject(new Error(`cannot connect to ${path} for the listening socket (${err})`));
  });
}
