/**
 * daemon.json of a private dockerd (tests' and benchmarks'): its own data root, exec root,
 * pidfile and unix socket, no networking set-up, one storage driver, and the loopback registry
 * listed as insecure.
 */
export function privateDockerdConfig(options: { dataRoot: string; execRoot: string; socket: string; driver: string; registryHost: string }): string {
  return JSON.stringify({
    'data-root': options.dataRoot,
    'exec-root': `${options.execRoot}/x`,
    pidfile: `${options.execRoot}/d.pid`,
    hosts: [`unix://${options.socket}`],
    iptables: false,
    'ip-masq': false,
    bridge: 'none',
    'storage-driver': options.driver,
    'insecure-registries': [options.registryHost],
  });
}
