import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { privateDockerdConfig, waitForDockerd } from '../../test/helpers/dockerd-config.js';

const run = promisify(execFile);
/** Debian's docker.io client (another `docker` may sit earlier on PATH). */
export const DOCKER = '/usr/bin/docker';
export const DOCKERD = '/usr/sbin/dockerd';

export interface BenchDockerd {
  /** The storage driver it runs (`docker info`'s Storage Driver). */
  driver: string;
  dataRoot: string;
  /** Environment for /usr/bin/docker against this daemon (DOCKER_HOST, its own client config). */
  env: NodeJS.ProcessEnv;
  docker(args: string[]): Promise<string>;
  /** `docker info` lines under Storage Driver, to check the driver in use. */
  storageInfo(): Promise<string>;
  stop(): Promise<void>;
}

/** Why Docker cannot be an anchor here, or undefined. */
export function dockerMissing(): string | undefined {
  for (const bin of [DOCKER, DOCKERD]) if (!existsSync(bin)) return `${bin} is not installed (apt-get install docker.io)`;
  return undefined;
}

/**
 * A private dockerd (FACTS.md's recipe): its own data root (`dataRoot`, a path without symlinks:
 * runc refuses one), exec root, pidfile and socket under /run, no networking set-up, the given
 * storage driver, and `registryHost` as an insecure registry. Its start is not part of any timing.
 */
export async function startBenchDockerd(dataRoot: string, driver: string, registryHost: string): Promise<BenchDockerd> {
  await mkdir(dataRoot, { recursive: true });
  const execRoot = await mkdtemp('/run/stratum-bd-');
  const socket = join(execRoot, 'd.sock');
  const config = join(execRoot, 'daemon.json');
  await writeFile(config, privateDockerdConfig({ dataRoot, execRoot, socket, driver, registryHost }));
  const logPath = join(execRoot, 'dockerd.log');
  const log = createWriteStream(logPath);
  const child: ChildProcess = spawn(DOCKERD, ['--config-file', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const env = { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(execRoot, 'client') };
  const docker = async (args: string[]) => (await run(DOCKER, args, { env, maxBuffer: 64 << 20 })).stdout;
  const stop = async () => {
    if (!exited) {
      // Containers first (a pause process as pid 1 ends only by SIGKILL), then the daemon. Killed,
      // not removed: their layers stay on disk until the benchmark's scratch filesystem goes.
      const ids = (await docker(['ps', '-q']).catch(() => '')).split('\n').filter(Boolean);
      if (ids.length > 0) await docker(['kill', ...ids]).catch(() => {});
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exit;
      clearTimeout(timer);
    }
    log.end();
    await run('umount', ['-R', '-l', dataRoot]).catch(() => {});
    await rm(execRoot, { recursive: true, force: true }).catch(() => {});
  };
  await waitForDockerd({
    name: `dockerd (${driver})`,
    docker,
    exited: () => exited,
    stop,
    timeoutMs: 60_000,
    exitedDetail: async () => (await readFile(logPath, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' / '),
  });
  const storageInfo = async () => (await docker(['info', '--format', '{{.Driver}} {{json .DriverStatus}}'])).trim();
  return { driver, dataRoot, env, docker, storageInfo, stop };
}
