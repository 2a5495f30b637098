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

/**
 * Waits until a just-spawned private dockerd answers `docker version`. A daemon that exits, or is
 * silent past `timeoutMs`, is stopped and the error says so (`exitedDetail` adds what its log said).
 */
export async function waitForDockerd(daemon: {
  name: string;
  docker: (args: string[]) => Promise<string>;
  exited: () => boolean;
  stop: () => Promise<void>;
  timeoutMs: number;
  exitedDetail: () => Promise<string>;
}): Promise<void> {
  const deadline = Date.now() + daemon.timeoutMs;
  for (;;) {
    if (daemon.exited()) {
      const detail = await daemon.exitedDetail();
      await daemon.stop();
      throw new Error(`${daemon.name} exited at start: ${detail}`);
    }
    try {
      await daemon.docker(['version']);
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        await daemon.stop();
        throw new Error(`${daemon.name} did not answer within ${daemon.timeoutMs / 1000} s: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
