/**
 * Stand-in for a daemon process in the adoption test: starts a VM, reports
 * its pid and state dir on stdout, then idles until it is SIGKILLed.
 * Does nothing unless HANGAR_VM_CHILD_SPEC is set (the test runner also
 * loads every file under test/).
 */
import { startVm, type VmSpec } from '../../../src/vm/index.js';

const specJson = process.env.HANGAR_VM_CHILD_SPEC;
if (specJson) {
  const spec = JSON.parse(specJson) as VmSpec;
  const h = await startVm(spec);
  h.on('log', (l) => { if (l.line === 'ready') process.stdout.write(JSON.stringify({ pid: h.pid, stateDir: h.stateDir, offset: l.offset }) + '\n'); });
  setInterval(() => {}, 1000);
}
