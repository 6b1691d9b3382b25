// The entry of the CLI's V8 startup snapshot, run by scripts/bundle-cli.mjs:
//   node --snapshot-blob dist/src/cli/hangar.snapshot.blob --build-snapshot scripts/cli-snapshot.cjs
// It evaluates the CLI bundle (every module's top level: zod's schemas, the
// command table) into the heap that the snapshot saves, so `hangar` starts
// as fast as `node -e 0`. Started from the snapshot (bin/hangar does that),
// node runs only the function set below.
//
// A snapshot builder may only require built-in modules, and not all of them
// can be captured yet (node:http cannot, in Node 20): those the bundle names
// at its top level are handed to it as lazy stand-ins, loaded on first use,
// which is always after the snapshot has been deserialized.
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const v8 = require('node:v8');

const bundle = join(process.cwd(), 'dist', 'src', 'cli', 'hangar.bundle.cjs');
const captured = new Set(['node:fs', 'node:path', 'node:util', 'node:os']);
const builtin = (name) => {
  if (captured.has(name)) return require(name);
  let loaded;
  const load = () => (loaded ??= require(name));
  return new Proxy({}, { get: (_, key) => load()[key], has: (_, key) => key in load() });
};
const module = { exports: {} };
// eslint-disable-next-line no-new-func
new Function('exports', 'require', 'module', '__filename', '__dirname', readFileSync(bundle, 'utf8'))(module.exports, builtin, module, bundle, join(bundle, '..'));
const { runCli, warmUpForSnapshot } = module.exports;
if (typeof runCli !== 'function') throw new Error(`${bundle} does not export runCli`);
warmUpForSnapshot();
// From a snapshot, node passes the command's arguments from argv[1] on.
v8.startupSnapshot.setDeserializeMainFunction(() => runCli(process.argv.slice(1), 'snapshot'));
