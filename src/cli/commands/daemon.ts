import { HangarError } from '../../shared/errors.js';
import type { Command } from '../command.js';

/** --keep-rootfs-trees: how many unpacked base trees to keep for fast redeploys (docs/rootfs.md, "Redeploys"). */
function keptTrees(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || n > 16) {
    throw new HangarError('USAGE', `--keep-rootfs-trees (or HANGAR_KEEP_ROOTFS_TREES) takes a whole number from 0 to 16, got "${raw}"; 0 keeps none`);
  }
  return n;
}

export const daemonCommands: Command[] = [
  {
    path: ['daemon'],
    summary: 'Run the Hangar daemon (API, registry, proxy) in the foreground',
    usage: 'daemon [--data-dir DIR] [--listen HOST:PORT] [--proxy-listen HOST:PORT] [--proxy-domain DOMAIN] [--mirror-upstream URL|off] [--keep-rootfs-trees N]',
    options: {
      'data-dir': { type: 'string' },
      listen: { type: 'string' },
      'proxy-listen': { type: 'string' },
      'proxy-domain': { type: 'string' },
      // Where the docker.io/ mirror pulls misses from (docs/registry.md); `off` serves only seeded images.
      'mirror-upstream': { type: 'string' },
      // Unpacked base trees kept for redeploys; on tmpfs they are memory (0 turns them off).
      'keep-rootfs-trees': { type: 'string' },
    },
    async run({ flags, out }) {
      const dataDir = (flags['data-dir'] as string | undefined) ?? process.env.HANGAR_DATA_DIR ?? '/var/lib/hangar';
      const listen = (flags.listen as string | undefined) ?? process.env.HANGAR_LISTEN ?? '127.0.0.1:4280';
      const proxyListen = (flags['proxy-listen'] as string | undefined) ?? process.env.HANGAR_PROXY_LISTEN;
      const proxyDomain = flags['proxy-domain'] as string | undefined;
      const mirrorUpstream = (flags['mirror-upstream'] as string | undefined) ?? process.env.HANGAR_MIRROR_UPSTREAM ?? 'https://registry-1.docker.io';
      const keepRootfsTrees = keptTrees((flags['keep-rootfs-trees'] as string | undefined) ?? process.env.HANGAR_KEEP_ROOTFS_TREES);
      // Loaded here, not at the top: every other command (deploy included)
      // would otherwise pay ~150 ms to load the whole daemon at start-up.
      // A variable, not a literal, so the CLI bundle (scripts/bundle-cli.mjs) leaves the daemon out; bin/hangar runs `hangar daemon` unbundled.
      const daemonModule = '../../daemon/index.js';
      const { startDaemon } = (await import(daemonModule)) as typeof import('../../daemon/index.js');
      const daemon = await startDaemon({ dataDir, listen, ...(proxyListen ? { proxyListen } : {}), ...(proxyDomain ? { proxyDomain } : {}), mirrorUpstream, ...(keepRootfsTrees !== undefined ? { keepRootfsTrees } : {}) });
      out.info(`hangar daemon ready on ${daemon.url} (data dir ${dataDir}); admin token in ${dataDir}/admin-token`);
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          out.info(`received ${sig}, shutting down`);
          daemon.close().then(resolve, resolve);
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
      // Guests keep running (they are re-adopted on the next start); exit
      // even if some library left a handle open.
      process.exit(0);
    },
  },
];
