import { startVm } from '../../src/vm/index.js';
import { makeRootfs, tempDir } from './fixtures.js';
const dir = tempDir();
const rootfs = await makeRootfs(dir, 'bb');
const t0 = Date.now();
const h = await startVm({ id: 'smoke1', stateDir: dir + '/vm', rootfs, ports: [{ guestPort: 8080 }],
  run: { image: { cmd: ['/bin/sh', '-c', 'echo hello; id; echo oops >&2; exit 7'], user: 'app', workingDir: '/home/app' }, debug: true } });
console.log('started in', Date.now() - t0, 'ms', h.ports);
h.on('log', (l) => console.log('LOG', Date.now() - t0, l.stream, l.line));
h.on('console', (l) => console.log('CON', l.line));
console.log(await h.waitExit());
