/**
 * Which fly.toml keys Hangar acts on and which it knows but ignores. A key
 * in neither set is reported as unknown (typo or newer Fly feature). Both
 * are warnings, not errors: an existing fly.toml must load as it is.
 */
type Node = true | 'ignored' | '*' | '*check' | { [key: string]: Node };

const check: Node = { grace_period: true, interval: true, timeout: true, method: true, path: true, protocol: true, headers: true, tls_skip_verify: 'ignored', tls_server_name: 'ignored', type: true, port: true, processes: true };
const concurrency: Node = { type: true, soft_limit: true, hard_limit: true };

const TREE: { [key: string]: Node } = {
  app: true,
  primary_region: true,
  kill_signal: true,
  kill_timeout: true,
  swap_size_mb: 'ignored',
  console_command: 'ignored',
  host_dedication_id: 'ignored',
  build: { image: true, dockerfile: true, ignorefile: true, 'build-target': true, build_target: true, args: '*', builder: 'ignored', buildpacks: 'ignored', builtin: 'ignored', settings: 'ignored', compression: 'ignored', compression_level: 'ignored', 'build-secrets': 'ignored' },
  deploy: { strategy: true, release_command: true, release_command_timeout: true, max_unavailable: true, wait_timeout: true, release_command_vm: 'ignored', seed_command: 'ignored' },
  env: '*',
  http_service: {
    internal_port: true, force_https: true, auto_stop_machines: true, auto_start_machines: true, min_machines_running: true, processes: true,
    concurrency, checks: check, machine_checks: 'ignored', http_options: 'ignored', tls_options: 'ignored',
  },
  services: {
    internal_port: true, protocol: true, processes: true, auto_stop_machines: true, auto_start_machines: true, min_machines_running: true, concurrency,
    ports: { port: true, start_port: true, end_port: true, handlers: true, force_https: true, tls_options: 'ignored', http_options: 'ignored', proxy_proto_options: 'ignored' },
    tcp_checks: check, http_checks: check, machine_checks: 'ignored',
  },
  checks: '*check',
  mounts: { source: true, destination: true, processes: true, initial_size: true, snapshot_retention: 'ignored', scheduled_snapshots: 'ignored', auto_extend_size_threshold: 'ignored', auto_extend_size_increment: 'ignored', auto_extend_size_limit: 'ignored' },
  processes: '*',
  vm: { size: true, memory: true, memory_mb: true, cpus: true, cpu_kind: true, processes: true, gpus: 'ignored', gpu_kind: 'ignored', kernel_args: 'ignored', host_dedication_id: 'ignored', persist_rootfs: 'ignored' },
  restart: { policy: true, retries: true, processes: true },
  files: { guest_path: true, raw_value: true, local_path: true, secret_name: true, processes: true },
  experimental: { cmd: true, entrypoint: true, exec: true, auto_rollback: 'ignored', lazy_load_images: 'ignored', enable_consul: 'ignored', enable_etcd: 'ignored', attached: 'ignored' },
  metrics: 'ignored',
  statics: 'ignored',
  machine_config: 'ignored',
  containers: 'ignored',
};

export interface KeyReport {
  /** Fly keys Hangar does not use yet (dotted paths). */
  ignored: string[];
  /** Keys neither Hangar nor Fly documents. */
  unknown: string[];
}

export function classifyKeys(raw: Record<string, unknown>): KeyReport {
  const report: KeyReport = { ignored: [], unknown: [] };
  walk(raw, TREE, '', report);
  return report;
}

function walk(value: unknown, spec: Node, path: string, report: KeyReport): void {
  if (spec === true || spec === '*') return;
  if (spec === 'ignored') {
    report.ignored.push(path);
    return;
  }
  if (spec === '*check') {
    // [checks.<name>]: free names, each a check table.
    if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, check, `${path}.${k}`, report);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => walk(v, spec, `${path}[${i}]`, report));
    return;
  }
  if (!value || typeof value !== 'object' || typeof spec !== 'object') return;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const sub = spec[k];
    const p = path ? `${path}.${k}` : k;
    if (sub === undefined) report.unknown.push(p);
    else walk(v, sub, p, report);
  }
}
