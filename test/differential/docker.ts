/**
 * Docker 20.10's own layer writer as a corpus writer: a private dockerd (FACTS.md's recipe) runs
 * `DOCKER_BUILDKIT=0 docker build --network none` on Dockerfiles whose RUN steps (a static
 * busybox shell) make the changes, so overlay2's diff writes the layers, whiteouts and opaque
 * directories as Docker does. `docker export` of a created container is a third oracle.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { privateDockerdConfig, waitForDockerd } from '../helpers/dockerd-config.js';

const run = promisify(execFile);
export const DOCKER = '/usr/bin/docker';
export const DOCKERD = '/usr/sbin/dockerd';
const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'mkdir', 'rm', 'ln', 'mknod', 'touch', 'chmod', 'chown', 'echo', 'mv', 'printf', 'mkfifo', 'cat', 'seq'];

export const BUILDAH = '/usr/bin/buildah';

/** Why Docker cannot be a writer here, or undefined. */
export function dockerMissing(): string | undefined {
  for (const bin of [DOCKER, DOCKERD, BUSYBOX]) if (!existsSync(bin)) return `${bin} is not installed (apt-get install docker.io busybox-static)`;
  return undefined;
}

/** Why buildah cannot be a writer here, or undefined. */
export function buildahMissing(): string | undefined {
  for (const bin of [BUILDAH, BUSYBOX]) if (!existsSync(bin)) return `${bin} is not installed (apt-get install buildah busybox-static)`;
  return undefined;
}

/** An image builder of the corpus: builds a context's Dockerfile as `ref` and pushes it to the loopback registry. */
export interface Builder {
  build(context: string, ref: string): Promise<void>;
  stop(): Promise<void>;
}

export function dockerBuilder(d: PrivateDockerd): Builder {
  return {
    async build(context, ref) {
      await d.docker(['build', '--network', 'none', '--quiet', '-t', ref, context]);
      await d.docker(['push', '--quiet', ref]);
    },
    stop: () => d.stop(),
  };
}

/**
 * buildah (containers/storage's layer writer) with its own root on the vfs driver, chroot
 * isolation (no daemon, no user namespace; RUN then shares the host network, which has no route
 * out here anyway).
 */
export async function startBuildah(dir: string): Promise<Builder> {
  const common = ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--storage-driver', 'vfs'];
  const buildah = (args: string[]) => run(BUILDAH, [...common, ...args], { maxBuffer: 64 << 20 });
  await buildah(['info']);
  return {
    async build(context, ref) {
      await buildah(['bud', '--isolation', 'chroot', '--quiet', '-t', ref, '-f', join(context, 'Dockerfile'), context]);
      await buildah(['push', '--quiet', '--tls-verify=false', ref, `docker://${ref}`]);
    },
    async stop() {
      await run('umount', ['-R', '-l', join(dir, 'root')]).catch(() => {});
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

export interface PrivateDockerd {
  /** Runs /usr/bin/docker against this daemon. */
  docker(args: string[], opts?: { cwd?: string; env?: Record<string, string> }): Promise<string>;
  /** The environment that points /usr/bin/docker at this daemon (DOCKER_HOST, its own client config). */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/**
 * Starts dockerd with its own data root (a path without symlinks: runc refuses one), exec root,
 * pidfile and socket, no networking set-up, overlay2, and `registry` as an insecure registry.
 */
export async function startDockerd(registryHost: string): Promise<PrivateDockerd> {
  // /tmp may be reached through a symlink on some machines; /var/lib is a real path here
  const dataRoot = await mkdtemp('/var/lib/stratum-corpus-docker-');
  const execRoot = await mkdtemp('/run/stratum-dk-');
  const socket = join(execRoot, 'd.sock');
  const config = join(dataRoot, '..', `${dataRoot.split('/').pop()}.json`);
  await writeFile(config, privateDockerdConfig({ dataRoot: join(dataRoot, 'root'), execRoot, socket, driver: 'overlay2', registryHost }));
  const log = createWriteStream(join(dataRoot, 'dockerd.log'));
  const child: ChildProcess = spawn(DOCKERD, ['--config-file', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const env = { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_BUILDKIT: '0', DOCKER_CONFIG: join(dataRoot, 'client') };
  const docker = async (args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) =>
    (await run(DOCKER, args, { cwd: opts.cwd, env: { ...env, ...opts.env }, maxBuffer: 64 << 20 })).stdout;
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exit;
      clearTimeout(timer);
    }
    log.end();
    await run('umount', ['-R', '-l', join(dataRoot, 'root')]).catch(() => {});
    await rm(dataRoot, { recursive: true, force: true }).catch(() => {});
    await rm(config, { force: true });
    await rm(execRoot, { recursive: true, force: true }).catch(() => {});
  };
  await waitForDockerd({
    name: 'dockerd',
    docker,
    exited: () => exited,
    stop,
    timeoutMs: 30_000,
    exitedDetail: async () => `its log: ${join(dataRoot, 'dockerd.log')}`,
  });
  return { docker, env, stop };
}

/** A build context with base.tar (a static busybox and its applets as symlinks) and the Dockerfile. */
export async function buildContext(dir: string, dockerfile: string): Promise<void> {
  const root = join(dir, 'base');
  await mkdir(join(root, 'bin'), { recursive: true });
  await copyFile(BUSYBOX, join(root, 'bin', 'busybox'));
  for (const a of APPLETS) await symlink('busybox', join(root, 'bin', a));
  await mkdir(join(root, 'c'));
  await run('/usr/bin/tar', ['-C', root, '--numeric-owner', '--owner=0', '--group=0', '--mtime=2024-01-01 00:00:00Z', '-cf', join(dir, 'base.tar'), '.']);
  await writeFile(join(dir, 'Dockerfile'), dockerfile);
}

/** One feature of the Docker writer: shell commands run in RUN steps, one layer each. */
export interface DockerFeature {
  id: string;
  about: string;
  /** Each a RUN step's shell script (in /c/<id>, which exists). */
  steps: string[];
}

const T = (s: string) => `touch -h -d '2024-01-01 00:00:0${s}' `;

export const DOCKER_FEATURES: readonly DockerFeature[] = [
  {
    id: 'dk-whiteouts',
    about: 'rm of a lower file, directory tree and symlink (Docker writes .wh. entries)',
    steps: ['echo f > file && mkdir -p tree/a && echo b > tree/a/b && ln -s file link && echo k > kept', 'rm -rf file tree link'],
  },
  {
    id: 'dk-opaque',
    about: 'a lower directory removed and made again in one step (Docker writes .wh..wh..opq)',
    steps: ['mkdir -p d/sub && echo old > d/old && echo old > d/sub/x', 'rm -rf d && mkdir d && echo new > d/new'],
  },
  {
    id: 'dk-type-changes',
    about: 'file→dir, dir→file, file→symlink, symlink→dir, dir→symlink in the next step',
    steps: [
      'echo f > f2d && mkdir -p d2f/x && echo f > f2s && ln -s nowhere s2d && mkdir -p d2s/y',
      'rm f2d && mkdir f2d && rm -rf d2f && echo now-a-file > d2f && rm f2s && ln -s f2d f2s && rm s2d && mkdir s2d && rm -rf d2s && ln -s f2d d2s',
    ],
  },
  {
    id: 'dk-hardlinks',
    about: 'hardlinks to a lower file (overlay copies it up), groups, a replaced lower file',
    steps: ['echo lower > lower && echo old > z', 'ln lower link-to-lower && echo new > a-new && rm z && ln a-new z && ln a-new g2'],
  },
  {
    id: 'dk-special',
    about: 'devices, a fifo, setuid/setgid/sticky, big owners, mtimes set with touch',
    steps: [
      [
        // buildah's chroot isolation may not mknod: it leaves a note instead
        '{ mknod null c 1 3 && mknod loop9 b 7 9 || echo cannot > no-mknod; } && mkfifo pipe',
        'echo s > suid && chmod 4755 suid && mkdir sgid && chmod 2775 sgid && mkdir sticky && chmod 1777 sticky',
        'echo u > big-uid && chown 3000000:3000001 big-uid',
        `echo t > timed && ${T('1')}timed && ln -s timed tlink && ${T('2')}tlink`,
      ].join(' && '),
    ],
  },
  {
    id: 'dk-names',
    about: 'long names (150- and 250-byte components, a ~1 KiB path), long symlink targets',
    steps: [
      [
        `n150=$(printf 'n%.0s' $(seq 150)) && n250=$(printf 'm%.0s' $(seq 250))`,
        'echo a > $n150 && echo b > $n250 && mkdir -p d/$n250/$n250/$n250 && echo deep > d/$n250/$n250/$n250/$n150',
        'ln -s d/$n250/$n250 long-target',
      ].join(' && '),
    ],
  },
];

/** The Dockerfile: FROM scratch, ADD the busybox base, then each feature's steps as RUNs in turn. */
export function dockerfile(features: readonly DockerFeature[]): string {
  const lines = ['FROM scratch', 'ADD base.tar /', `RUN mkdir -p ${features.map((f) => `/c/${f.id}`).join(' ')}`];
  const depth = Math.max(...features.map((f) => f.steps.length));
  for (let i = 0; i < depth; i++) {
    const parts = features.filter((f) => f.steps[i]).map((f) => `(cd /c/${f.id} && ${f.steps[i]})`);
    lines.push(`RUN ${parts.join(' && ')}`);
  }
  return lines.join('\n') + '\n';
}

/** `docker create` + `docker export` of `image`, extracted (owners, modes, xattrs, times) into `dir`. */
export async function exportRootfs(d: PrivateDockerd, image: string, dir: string): Promise<void> {
  const id = (await d.docker(['create', '--network', 'none', image, '/bin/sh'])).trim();
  try {
    await mkdir(dir, { recursive: true });
    const tarPath = `${dir}.tar`;
    await d.docker(['export', '-o', tarPath, id]);
    await run('/usr/bin/tar', ['-xpf', tarPath, '--numeric-owner', '--same-owner', '--xattrs', '--xattrs-include=*', '-C', dir]);
    await rm(tarPath, { force: true });
  } finally {
    await d.docker(['rm', '-f', id]).catch(() => {});
  }
}

/** startDockerd, or why it could not start (for a loud skip): tests that need Docker as an oracle. */
export async function tryStartDockerd(registryHost: string): Promise<{ docker?: PrivateDockerd; failed?: string }> {
  try {
    return { docker: await startDockerd(registryHost) };
  } catch (err) {
    return { failed: (err as Error).message };
  }
}
