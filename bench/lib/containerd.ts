import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runQuiet } from './measure.js';

export const CONTAINERD = '/usr/bin/containerd';
export const CTR = '/usr/bin/ctr';

/**
 * Plugins a pull with unpack does not use: CRI, the other snapshotters, tasks and runtimes (no
 * containers are run), cgroup monitoring, tracing, /opt installs and the restart monitor.
 */
const DISABLED_PLUGINS = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.internal.v1.opt',
  'io.containerd.internal.v1.restart',
  'io.containerd.internal.v1.tracing',
  'io.containerd.tracing.processor.v1.otlp',
  'io.containerd.monitor.v1.cgroups',
  'io.containerd.runtime.v1.linux',
  'io.containerd.runtime.v2.task',
  'io.containerd.service.v1.tasks-service',
  'io.containerd.grpc.v1.tasks',
];

export interface PrivateContainerd {
  /** The daemon's gRPC socket, for `ctr -a`. */
  socket: string;
  /** Its root (content store, metadata, snapshots): inside the directory given to start. */
  root: string;
  pid: number;
  /** The daemon's peak RSS so far (VmHWM of /proc/PID/status), in bytes. */
  peakRssBytes(): Promise<number>;
  /** Stops the daemon (SIGTERM, then SIGKILL after 10 s) and removes its root and state. */
  stop(): Promise<void>;
}

/** Fails loudly when Debian's containerd or ctr is missing. */
export function requireContainerd(): void {
  for (const bin of [CONTAINERD, CTR]) if (!existsSync(bin)) throw new Error(`${bin} is not installed (apt-get install containerd)`);
}

/**
 * Starts a private containerd 1.6 with its own config, root (under `dir`), state and socket
 * (under /run, short enough for a unix socket path), nothing shared with a system containerd.
 * Only what `ctr image pull` needs is loaded; the overlayfs snapshotter is there.
 */
export async function startContainerd(dir: string): Promise<PrivateContainerd> {
  requireContainerd();
  await mkdir(dir, { recursive: true });
  const root = join(dir, 'root');
  const runDir = await mkdtemp('/run/stratum-bench-ctrd-');
  const socket = join(runDir, 'c.sock');
  const config = [
    'version = 2',
    `root = ${JSON.stringify(root)}`,
    `state = ${JSON.stringify(join(runDir, 'state'))}`,
    `disabled_plugins = ${JSON.stringify(DISABLED_PLUGINS)}`,
    '[grpc]',
    `  address = ${JSON.stringify(socket)}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
    '[debug]',
    '  address = ""',
    '  level = "warn"',
    '[metrics]',
    '  address = ""',
    '',
  ].join('\n');
  const configPath = join(dir, 'config.toml');
  await writeFile(configPath, config);
  const log = createWriteStream(join(dir, 'containerd.log'), { flags: 'a' });
  const child: ChildProcess = spawn(CONTAINERD, ['--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));

  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
    }
    log.end();
    await rm(root, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  };

  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (exited) throw new Error(`containerd exited at start; see ${join(dir, 'containerd.log')}`);
      try {
        await runQuiet(CTR, ['-a', socket, 'version'], true);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`containerd did not answer on ${socket} within 20 s: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    socket,
    root,
    pid: child.pid!,
    async peakRssBytes() {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      const m = /^VmHWM:\s+(\d+) kB$/m.exec(status);
      if (!m) throw new Error(`no VmHWM in /proc/${child.pid}/status`);
      return Number(m[1]) * 1024;
    },
    stop,
  };
}
