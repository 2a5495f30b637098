/**
 * The CLI as docker users meet it: every command under a pseudo-terminal and through pipes, exit
 * codes (0 success, 1 failure, 2 usage, 130/143 interrupted), never a stack trace; --format,
 * docker's flags, and help/completion/man generated from one definition. Real registry (through
 * the fault proxy), real overlay mounts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { commandPaths } from '../../src/cli/completion.js';
import { GLOBAL_OPTIONS } from '../../src/cli/spec.js';
import { pushFixtures, type PushedFixtures } from '../fixtures/images.js';
import { CLI, isolatedCliEnv, jsonEvents, runCli, spawnCli, underPty, type CliResult } from '../helpers/cli.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';

const exec = promisify(execFile);
const STACK = /\n\s+at .+:\d+:\d+\)?$|Unhandled 'error' event|node:internal/m;

function assertNoStack(r: { stdout: string; stderr: string }): void {
  assert.doesNotMatch(r.stderr, STACK, `stack trace on stderr:\n${r.stderr}`);
  assert.doesNotMatch(r.stdout, STACK, `stack trace on stdout:\n${r.stdout}`);
}

/** `sh -c 'stratum ARGS | head …'`: stratum's own status from PIPESTATUS-less sh via a status file. */
async function throughPipe(args: string[], reader: string, env: NodeJS.ProcessEnv): Promise<{ status: number; stdout: string; stderr: string }> {
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const script = `{ ${quoted}; echo $? > "$STATUS_FILE"; } | ${reader}`;
  const dirs = new TempDirs();
  const statusFile = join(await dirs.make('status'), 'status');
  try {
    const { stdout, stderr } = await exec('bash', ['-c', script], { env: { ...process.env, ...env, STATUS_FILE: statusFile }, encoding: 'latin1', maxBuffer: 64 << 20 });
    const { readFile } = await import('node:fs/promises');
    return { status: Number((await readFile(statusFile, 'utf8')).trim()), stdout, stderr };
  } finally {
    await dirs.cleanup();
  }
}

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: overlay mounts';
  if (!existsSync('/usr/bin/docker-registry')) return '/usr/bin/docker-registry is not installed';
  return undefined;
}

describe('the CLI definition: help, completion and man pages from one source', () => {
  test('every command and flag is in --help, the bash/zsh/fish completion and its man page', async () => {
    const completions = await Promise.all(['bash', 'zsh', 'fish'].map(async (shell) => {
      const r = await runCli(['completion', shell]);
      assert.equal(r.code, 0, r.stderr);
      return [shell, r.stdout] as const;
    }));
    for (const [path, spec] of commandPaths()) {
      const help = await runCli([...path, '--help']);
      assert.equal(help.code, 0, `${path.join(' ')} --help: ${help.stderr}`);
      const man = await runCli(['man', ...path]);
      assert.equal(man.code, 0, `man ${path.join(' ')}: ${man.stderr}`);
      assert.match(man.stdout, /^\.TH STRATUM/m);
      for (const o of [...(spec.options ?? []), ...GLOBAL_OPTIONS]) {
        assert.ok(help.stdout.includes(`--${o.name}`), `${path.join(' ')} --help lacks --${o.name}`);
        assert.ok(man.stdout.includes(`\\-\\-${o.name.replace(/-/g, "\\-")}`), `man ${path.join(' ')} lacks --${o.name}`);
        if (o.short) assert.ok(help.stdout.includes(`-${o.short}, --${o.name}`), `${path.join(' ')} --help lacks -${o.short}`);
        for (const [shell, script] of completions) {
          const spelled = shell === 'fish' ? `-l ${o.name}` : `--${o.name}`;
          assert.ok(script.includes(spelled), `${shell} completion lacks ${spelled} (${path.join(' ')})`);
        }
      }
      for (const [, script] of completions) assert.ok(script.includes(path.at(-1)!), `completion lacks ${path.join(' ')}`);
    }
    // The generated scripts are valid for their shells.
    await exec('bash', ['-n', '-c', completions[0]![1]]);
    if (existsSync('/usr/bin/zsh')) await exec('zsh', ['-n', '-c', completions[1]![1]]);
    if (existsSync('/usr/bin/fish')) await exec('fish', ['-n', '-c', completions[2]![1]]);
  });

  test('bash completion completes commands, flags and sub-commands', async () => {
    const script = (await runCli(['completion', 'bash'])).stdout;
    const complete = async (words: string[]) => {
      const prog = `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _stratum; printf '%s\\n' "\${COMPREPLY[@]}"`;
      return (await exec('bash', ['-c', prog])).stdout.trim().split('\n');
    };
    assert.deepEqual(await complete(['stratum', 'pu']), ['pull', 'push']);
    assert.ok((await complete(['stratum', 'pull', '--pla'])).includes('--platform'));
    assert.ok((await complete(['stratum', '--store', '/tmp', 'snapshot', 'c'])).includes('commit'));
    assert.deepEqual(await complete(['stratum', 'completion', 'z']), ['zsh']);
    assert.ok((await complete(['stratum', 'pull', '--snapshotter', 'b'])).includes('btrfs'));
    assert.deepEqual(await complete(['stratum', 'pull', '--snapshotter', 'fu']), ['fuse-overlayfs']);
  });

  test('usage mistakes: status 2, a message that names the fault, a suggestion, never a stack', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['pull', '--platfrom', 'linux/amd64', 'x'], /unknown flag: --platfrom .*did you mean --platform\?/],
      [['pul', 'x'], /unknown command "pul"; did you mean pull\?/],
      [['pull'], /"stratum pull" requires an argument: missing NAME\[:TAG\|@DIGEST\]/],
      [['tag', 'a'], /requires 2 arguments: missing TARGET\[:TAG\]/],
      [['mount', 'a', 'b', 'c'], /accepts at most 2 arguments: unexpected "c"/],
      [['images', '--format', 'yaml'], /unknown format "yaml".*fields: Repository, Tag/],
      [['images', '--format', '{{.Nope}}'], /no field "Nope"; fields: Repository/],
      [['history', '--format', '{{.CreatedBy', 'x'], /unclosed action/],
      [['snapshot', 'lss'], /unknown snapshot command "lss"; did you mean ls\?/],
      [['completion', 'tcsh'], /unsupported shell "tcsh"/],
      [['--bogus', 'images'], /unknown flag: --bogus/],
      [['pull', '-platform', 'x', 'y'], /did you mean --platform\?/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assertNoStack(r);
    }
  });

  test('help, version: stratum help CMD, CMD --help, -v, --version, version --format', async () => {
    const viaHelp = await runCli(['help', 'pull']);
    const viaFlag = await runCli(['pull', '--help']);
    assert.equal(viaHelp.code, 0);
    assert.equal(viaHelp.stdout, viaFlag.stdout);
    assert.match(viaHelp.stdout, /^Usage: stratum pull \[OPTIONS\] NAME\[:TAG\|@DIGEST\]/);
    assert.match((await runCli(['help', 'snapshot', 'rm'])).stdout, /^Usage: stratum snapshot rm \[OPTIONS\] KEY\.\.\./);
    const { version } = JSON.parse(await (await import('node:fs/promises')).readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['-v', '--version']) assert.equal((await runCli([flag])).stdout, `stratum version ${version}\n`);
    assert.equal((await runCli(['version', '--format', '{{.Version}}'])).stdout, `${version}\n`);
    assert.equal(JSON.parse((await runCli(['version', '--format', 'json'])).stdout).Version, version);
    const none = await runCli([]);
    assert.equal(none.code, 2);
    assert.match(none.stdout, /^Usage: stratum \[OPTIONS\] COMMAND/);
  });

  test('every command: --help through a pipe that closes early and under a terminal, status 0, no stack', async () => {
    for (const [path] of commandPaths()) {
      const piped = await throughPipe([...path, '--help'], 'head -1', {});
      assert.equal(piped.status, 0, `${path.join(' ')} --help | head -1: ${piped.stderr}`);
      assert.match(piped.stdout, /^Usage: stratum /);
      assertNoStack(piped);
      const tty = await underPty([...path, '--help'], {});
      assert.equal(tty.status, 0, `${path.join(' ')} --help under a pty: ${tty.output}`);
      assertNoStack({ stdout: tty.output, stderr: '' });
    }
    // Long output into a reader that leaves at once: the writer must not die of EPIPE.
    const completion = await throughPipe(['completion', 'bash'], 'head -c 1 >/dev/null', {});
    assert.equal(completion.status, 0, completion.stderr);
    assertNoStack(completion);
  });

  test('a mistyped --store on a read command is an error and creates nothing', async () => {
    const dirs = new TempDirs();
    try {
      const missing = join(await dirs.make('parent'), 'nonexistent', 'x');
      for (const args of [['images'], ['df'], ['history', 'a'], ['inspect', 'a'], ['snapshot', 'ls'], ['info'], ['gc'], ['rmi', 'a']]) {
        const r = await runCli([...args, '--store', missing]);
        assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /no store at .*nonexistent\/x \(--store\)/);
        assert.equal(existsSync(missing), false, `${args.join(' ')} created the store`);
      }
    } finally {
      await dirs.cleanup();
    }
  });

  test('man --output writes one page per command', async () => {
    const dirs = new TempDirs();
    try {
      const dir = await dirs.make('man');
      assert.equal((await runCli(['man', '--output', dir])).code, 0);
      const pages = (await readdir(dir)).sort();
      for (const [path] of commandPaths()) assert.ok(pages.includes(`stratum-${path.join('-')}.1`), `no page for ${path.join(' ')}`);
      assert.ok(pages.includes('stratum.1'));
      if (existsSync('/usr/bin/man')) {
        const { stdout } = await exec('man', ['-l', join(dir, 'stratum-pull.1')], { env: { ...process.env, MANWIDTH: '100', MANPAGER: 'cat', PAGER: 'cat' } });
        assert.match(stdout, /--platform/);
      }
    } finally {
      await dirs.cleanup();
    }
  });
});

describe('the CLI against a real registry: pipes, signals, terminals, --format, docker flags', { skip: skipReason() ?? false }, () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let fixtures: PushedFixtures;
  const dirs = new TempDirs();
  let env: NodeJS.ProcessEnv = {};
  let store: string;

  const cli = (...args: string[]): Promise<CliResult> => runCli([...args, '--store', store, '--mirror', `docker.io=${proxy.url}`], env);
  const ok = async (...args: string[]): Promise<string> => {
    const r = await cli(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assertNoStack(r);
    return r.stdout;
  };

  before(async () => {
    registry = await sharedRegistry({ schema1: true });
    fixtures = await pushFixtures(registry);
    proxy = await FaultProxy.start(registry.url);
    const home = await dirs.make('home');
    env = isolatedCliEnv(home);
    store = await dirs.make('store');
    await ok('pull', 'base:1');
    await ok('pull', 'app:1');
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
    await dirs.cleanup();
  });

  test('images: docker columns, -q, --digests, --no-trunc, REPO[:TAG], --filter, --format json lines and templates', async () => {
    const table = (await ok('images')).trimEnd().split('\n');
    assert.match(table[0]!, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    assert.equal(table.length, 3);
    const digests = (await ok('images', '--digests')).split('\n')[0]!;
    assert.match(digests, /^REPOSITORY\s+TAG\s+DIGEST\s+IMAGE ID\s+CREATED\s+SIZE$/);
    const ids = (await ok('images', '-q')).trim().split('\n');
    assert.deepEqual(new Set(ids), new Set([fixtures.base.configDigest, fixtures.app.configDigest].map((d) => d.slice(7, 19))));
    assert.deepEqual((await ok('images', '-q', '--no-trunc', 'app')).trim(), fixtures.app.configDigest);
    assert.equal((await ok('images', '--format', '{{.Repository}}:{{.Tag}}', 'base:1')).trim(), 'base:1');
    assert.equal((await ok('images', '--format', '{{.Repository}}', 'base:2')).trim(), '');
    const lines = (await ok('images', '--format', 'json')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    assert.equal(lines.length, 2);
    for (const l of lines) for (const key of ['Repository', 'Tag', 'ID', 'CreatedSince', 'CreatedAt', 'Size', 'Digest']) assert.equal(typeof l[key], 'string', key);
    const tableTemplate = (await ok('images', '--format', 'table {{.Repository}}\\t{{.ID}}')).trimEnd().split('\n');
    assert.match(tableTemplate[0]!, /^REPOSITORY\s+IMAGE ID$/);
    assert.equal((await ok('images', '--filter', 'reference=ap*', '--format', '{{.Repository}}')).trim(), 'app');
    assert.equal((await ok('images', '--filter', 'dangling=true', '-q')).trim(), '');
    const jsonTemplate = JSON.parse((await ok('images', '--format', '{{json .}}', 'app')).trim()) as Record<string, string>;
    assert.equal(jsonTemplate.Repository, 'app');
    const badFilter = await cli('images', '--filter', 'colour=red');
    assert.equal(badFilter.code, 2);
    assert.match(badFilter.stderr, /invalid filter 'colour'/);
  });

  test('history: image ID on top, <missing> below, unpacked SIZE, CompressedSize, -q, -H=false', async () => {
    const rows = (await ok('history', 'app:1')).trimEnd().split('\n');
    assert.match(rows[0]!, /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
    assert.ok(rows[1]!.startsWith(fixtures.app.configDigest.slice(7, 19)), rows[1]);
    for (const row of rows.slice(2)) assert.ok(row.startsWith('<missing>'), row);
    const json = (await ok('history', '--format', 'json', 'app:1')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    const layered = json.filter((r) => r.CompressedSize !== '0B');
    assert.equal(layered.length, fixtures.app.layers.length);
    // Unpacked size after the pull: the snapshot's own data, not the gzip blob's size.
    for (const r of layered) assert.notEqual(r.Size, '-');
    const raw = (await ok('history', '-H=false', '--format', '{{.Size}} {{.CompressedSize}} {{.CreatedAt}}', 'app:1')).trim().split('\n');
    for (const line of raw) assert.match(line, /^\d+ \d+ (\d{4}-\d\d-\d\dT|$)/);
    assert.deepEqual((await ok('history', '-q', 'app:1')).trim().split('\n').slice(1).every((l) => l === '<missing>'), true);
  });

  test('tag, then rmi of several names; rmi -f of a missing name is not an error', async () => {
    assert.equal(await ok('tag', 'base:1', 'mine/base:copy'), '');
    assert.equal(await ok('tag', fixtures.base.configDigest.slice(7, 15), 'other:v2'), '');
    const ids = (await ok('images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}')).trim().split('\n');
    assert.ok(ids.includes(`mine/base:copy ${fixtures.base.configDigest.slice(7, 19)}`), ids.join('\n'));
    const digestTag = await cli('tag', 'base:1', 'x@sha256:' + '0'.repeat(64));
    assert.equal(digestTag.code, 1);
    assert.match(digestTag.stderr, /a tag cannot name a digest/);
    const removed = await ok('rmi', 'mine/base:copy', 'other:v2');
    assert.match(removed, /Untagged: docker\.io\/mine\/base:copy\nUntagged: docker\.io\/library\/other:v2/);
    assert.equal((await cli('rmi', '-f', 'never:there')).code, 0);
    const partly = await cli('rmi', 'never:there', 'also:missing');
    assert.equal(partly.code, 1);
    assert.equal(partly.stderr.split('\n').filter((l) => l.startsWith('stratum: error:')).length, 2);
  });

  test('df, snapshot ls and info take --format like docker', async () => {
    const types = (await ok('df', '--format', 'json')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    assert.deepEqual(types.map((t) => t.Type), ['Images', 'Snapshots', 'Unreferenced blobs', 'Partial downloads']);
    assert.equal(types[0]!.TotalCount, '2');
    assert.match((await ok('df', '--format', '{{.Type}}={{.Size}}')).split('\n')[0]!, /^Images=\d/);
    const verbose = JSON.parse(await ok('df', '-v', '--format', 'json')) as { Images: Array<{ Repository: string; Size: number }> };
    assert.deepEqual(verbose.Images.map((i) => i.Repository).sort(), ['app', 'base']);
    const keys = (await ok('snapshot', 'ls', '-q')).trim().split('\n');
    assert.ok(keys.length >= 2 && keys.every((k) => k.startsWith('sha256:')), keys.join('\n'));
    assert.match((await ok('info', '--format', '{{.Driver}}')).trim(), /^(overlay|native|btrfs|zfs)$/);
  });

  test('inspect: docker shape, --format, --raw and --config bytes as stored', async () => {
    const [object] = JSON.parse(await ok('inspect', 'app:1')) as Array<Record<string, unknown>>;
    assert.equal(object!.Id, fixtures.app.configDigest);
    assert.deepEqual(object!.RepoTags, ['docker.io/library/app:1']);
    assert.equal((await ok('inspect', '--format', '{{.Id}}', 'app:1')).trim(), fixtures.app.configDigest);
    const raw = await ok('inspect', '--raw', 'app:1');
    const { createHash } = await import('node:crypto');
    assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, fixtures.app.digest);
    const config = await ok('inspect', '--config', '--raw', 'app:1');
    assert.equal(`sha256:${createHash('sha256').update(config).digest('hex')}`, fixtures.app.configDigest);
  });

  test('pipes: pull | head -1 and export -o - | head -c ends quietly with status 0, leaving no mount or view behind', async () => {
    const other = await dirs.make('store');
    const pulled = await throughPipe(['pull', '--store', other, '--mirror', `docker.io=${proxy.url}`, 'app:1'], 'head -1', env);
    assert.equal(pulled.status, 0, pulled.stderr);
    assert.equal(pulled.stdout, '1: Pulling from library/app\n');
    assertNoStack(pulled);
    // The pull went on to the end: the image is there.
    assert.equal((await runCli(['images', '-q', '--store', other], env)).stdout.trim().split('\n').length, 1);

    const before = (await ok('snapshot', 'ls', '-q')).trim();
    const exported = await throughPipe(['export', '--store', store, 'app:1', '-o', '-'], 'head -c 100 | wc -c', env);
    assert.equal(exported.status, 0, exported.stderr);
    assert.equal(exported.stdout.trim(), '100');
    assertNoStack(exported);
    assert.equal((await ok('snapshot', 'ls', '-q')).trim(), before, 'export left a view snapshot behind');
    const mounts = await (await import('node:fs/promises')).readFile('/proc/self/mountinfo', 'utf8');
    assert.doesNotMatch(mounts, new RegExp(store.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));

    const listed = await throughPipe(['images', '--store', store, '--format', '{{.ID}}'], 'head -1', env);
    assert.equal(listed.status, 0);
    const json = await throughPipe(['pull', '--json', '--store', other, '--mirror', `docker.io=${proxy.url}`, 'base:1'], 'head -2', env);
    assert.equal(json.status, 0, json.stderr);
    assertNoStack(json);
  });

  test('export -o into a missing directory: a clear error naming it, no partial file', async () => {
    const r = await cli('export', 'app:1', '-o', '/nonexistent/dir/x.tar');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot write \/nonexistent\/dir\/x\.tar: directory \/nonexistent\/dir does not exist/);
    assertNoStack(r);
  });

  test('off a terminal pull prints state lines only; under a terminal it draws docker bars', async () => {
    const plain = await runCli(['pull', '--store', await dirs.make('store'), '--mirror', `docker.io=${proxy.url}`, 'app:1'], env);
    assert.equal(plain.code, 0, plain.stderr);
    assert.doesNotMatch(plain.stdout, /\[=*>/);
    assert.doesNotMatch(plain.stdout, /\x1b\[/);
    assert.match(plain.stdout, /: Pull complete$/m);

    const tty = await underPty(['pull', '--store', await dirs.make('store'), '--mirror', `docker.io=${proxy.url}`, 'app:1'], env);
    assert.equal(tty.status, 0, tty.output);
    assert.match(tty.output, /Pull complete/);
    assertNoStack({ stdout: tty.output, stderr: '' });
    for (const args of [['images'], ['history', 'app:1'], ['df', '-v'], ['snapshot', 'ls'], ['info'], ['inspect', 'app:1']]) {
      const r = await underPty([...args, '--store', store], env);
      assert.equal(r.status, 0, `${args.join(' ')}: ${r.output}`);
      assertNoStack({ stdout: r.output, stderr: '' });
    }
    const refused = await underPty(['export', 'app:1', '-o', '-', '--store', store], env);
    assert.equal(refused.status, 2);
    assert.match(refused.output, /refusing to write a tar archive to a terminal/);
  });

  test('--json errors end with an error event; unexpected failures print one line, --debug the stack', async () => {
    const r = await cli('pull', '--json', 'library/nothere:1');
    assert.equal(r.code, 1);
    const events = jsonEvents(r);
    const last = events.at(-1)!;
    assert.equal(last.type, 'error');
    assert.equal(typeof last.code, 'string');
    assert.match(String(last.message), /nothere/);
    assertNoStack(r);
  });

  test('Ctrl-C during a pull: status 130, the partial download kept and resumed by the next pull; SIGTERM: 143', async () => {
    for (const [signal, status] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      const target = await dirs.make('store');
      proxy.clearLog();
      proxy.stallAfter(200, 30_000, { path: new RegExp(`/blobs/${fixtures.base.layers[0]!.digest}$`) });
      const { child, done } = spawnCli(['pull', '--store', target, '--mirror', `docker.io=${proxy.url}`, 'base:1'], env);
      const deadline = Date.now() + 20_000;
      while (proxy.requests('GET', new RegExp(`/blobs/${fixtures.base.layers[0]!.digest}$`)).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 300));
      child.kill(signal);
      const r = await done;
      assert.equal(r.code, status, `${signal}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`interrupted by ${signal}`));
      assertNoStack(r);
      const partial = (await runCli(['df', '--format', '{{.Type}} {{.TotalCount}}', '--store', target], env)).stdout;
      assert.match(partial, /^Partial downloads 1$/m, partial);
      proxy.clearLog();
      const again = await runCli(['pull', '--store', target, '--mirror', `docker.io=${proxy.url}`, 'base:1'], env);
      assert.equal(again.code, 0, again.stderr);
      const resumed = proxy.requests('GET', new RegExp(`/blobs/${fixtures.base.layers[0]!.digest}$`));
      assert.ok(resumed.some((q) => /^bytes=[1-9]\d*-/.test(String(q.headers?.range ?? ''))), `no Range resume: ${JSON.stringify(resumed.map((q) => q.headers))}`);
    }
  });

  test('remote: manifest inspect, inspect docker:// --raw/--config equal skopeo byte for byte; list-tags; copy checked with skopeo', async () => {
    const skopeoRaw = async (...args: string[]) => (await exec('skopeo', ['inspect', '--tls-verify=false', '--raw', ...args], { encoding: 'buffer', maxBuffer: 16 << 20 })).stdout.toString('utf8');
    const app = fixtures.app.reference;
    assert.equal(await ok('manifest', 'inspect', '--raw', app), await skopeoRaw(`docker://${app}`));
    assert.equal(await ok('inspect', '--raw', `docker://${app}`), await skopeoRaw(`docker://${app}`));
    assert.equal(await ok('inspect', '--config', '--raw', `docker://${app}`), await skopeoRaw('--config', `docker://${app}`));
    assert.equal(await ok('manifest', 'inspect', '--raw', fixtures.multi.reference), await skopeoRaw(`docker://${fixtures.multi.reference}`));
    const remote = JSON.parse(await ok('inspect', `docker://${app}`)) as { Digest: string; Layers: string[] };
    assert.equal(remote.Digest, fixtures.app.digest);
    assert.deepEqual(remote.Layers, fixtures.app.layers.map((l) => l.digest));
    assert.match(await ok('list-tags', `${registry.host}/library/app`), /^1$/m);
    const tagsJson = (await ok('list-tags', '--format', 'json', `${registry.host}/library/app`)).trim().split('\n').map((l) => JSON.parse(l) as { Tag: string });
    assert.ok(tagsJson.some((t) => t.Tag === '1'));

    const target = `${registry.host}/copied/app:${process.pid}`;
    const copied = await ok('copy', app, target);
    assert.match(copied, new RegExp(`digest: ${fixtures.app.digest}`));
    assert.equal(await skopeoRaw(`docker://${target}`), await skopeoRaw(`docker://${app}`));
    const layout = join(await dirs.make('layout'), 'oci');
    assert.equal((await ok('copy', '--all', '-q', fixtures.multi.reference, `oci:${layout}:multi`)).trim(), fixtures.multi.digest);
    const viaSkopeo = JSON.parse((await exec('skopeo', ['inspect', '--raw', `oci:${layout}:multi`])).stdout) as { manifests: unknown[] };
    assert.equal(viaSkopeo.manifests.length, fixtures.multi.manifests.length);
  });

  test('pull --all-platforms keeps the index and every platform, unpacks the host one; skopeo reads the index', async () => {
    const target = await dirs.make('store');
    const r = await runCli(['pull', '--all-platforms', '--store', target, '--mirror', `docker.io=${proxy.url}`, 'multi:1'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Digest: ${fixtures.multi.digest}$`, 'm'));
    const platforms = (await runCli(['images', '--store', target, '--format', '{{.Platform}}'], env)).stdout.trim().split('\n').sort();
    assert.equal(platforms.length, fixtures.multi.manifests.length);
    const raw = (await exec('skopeo', ['inspect', '--raw', `oci:${target}:docker.io/library/multi:1`], { encoding: 'buffer' })).stdout;
    const { createHash } = await import('node:crypto');
    assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, fixtures.multi.digest);
    const arm = fixtures.multi.manifests.find((m) => m.platform.architecture === 'arm')!;
    assert.equal((await runCli(['inspect', '--platform', 'linux/arm/v7', '--format', '{{.Id}}', '--store', target, 'multi:1'], env)).stdout.trim(), arm.configDigest);
    const [host] = JSON.parse((await runCli(['inspect', '--store', target, 'multi:1'], env)).stdout) as Array<{ Unpacked: boolean }>;
    assert.equal(host!.Unpacked, true);
  });

  test('push mounts a layer from wherever the store saw it on that registry, not only the image’s own repository', async () => {
    const target = await dirs.make('store');
    const run = (...args: string[]) => runCli([...args, '--store', target], env);
    assert.equal((await run('pull', '-q', fixtures.app.reference)).code, 0);
    assert.equal((await run('tag', fixtures.app.reference, 'local/renamed:1')).code, 0);
    const pushed = await run('push', 'local/renamed:1', `${registry.host}/team${process.pid}/renamed:1`);
    assert.equal(pushed.code, 0, pushed.stderr);
    for (const layer of fixtures.app.layers) assert.match(pushed.stdout, new RegExp(`^${layer.digest.slice(7, 19)}: Mounted from library/app$`, 'm'));
    // The push itself is a source now: the next repository mounts from it (newest first).
    const again = await run('push', 'local/renamed:1', `${registry.host}/other${process.pid}/renamed:1`);
    assert.match(again.stdout, new RegExp(`Mounted from team${process.pid}/renamed`));
    // A copy into the store records its source too.
    assert.equal((await run('copy', fixtures.zstd.reference, 'store:local/copied:1')).code, 0);
    const copied = await run('push', 'local/copied:1', `${registry.host}/third${process.pid}/copied:1`);
    assert.equal(copied.code, 0, copied.stderr);
    for (const layer of fixtures.zstd.layers) assert.match(copied.stdout, new RegExp(`^${layer.digest.slice(7, 19)}: Mounted from library/zstd$`, 'm'));
  });

  test('manifest create + manifest push: an index of two stored images goes up whole; skopeo copies it with --all', async () => {
    const target = await dirs.make('store');
    const run = (...args: string[]) => runCli([...args, '--store', target], env);
    for (const [platform, name] of [['linux/arm/v7', 'armimg:1'], ['linux/arm64/v8', 'arm64img:1']] as const) {
      const r = await run('copy', '--platform', platform, fixtures.multi.reference, `store:${name}`);
      assert.equal(r.code, 0, r.stderr);
    }
    const dup = await run('manifest', 'create', 'mine/bad:1', 'armimg:1', 'armimg:1');
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /platform linux\/arm\/v7 is already given/);
    const created = await run('manifest', 'create', '--annotation', 'org.opencontainers.image.title=two', 'mine/multi:1', 'armimg:1', 'arm64img:1');
    assert.equal(created.code, 0, created.stderr);
    const digest = created.stdout.trim();
    assert.equal((await run('images', '--format', '{{.Platform}}', 'mine/multi:1')).stdout.trim().split('\n').sort().join(' '), 'linux/arm/v7 linux/arm64/v8');
    const dest = `${registry.host}/indexes${process.pid}/multi:1`;
    const pushed = await run('manifest', 'push', 'mine/multi:1', dest);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stdout, new RegExp(`digest: ${digest}`));
    const raw = (await exec('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${dest}`], { encoding: 'buffer' })).stdout;
    const { createHash } = await import('node:crypto');
    assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, digest);
    assert.equal(JSON.parse(raw.toString()).annotations['org.opencontainers.image.title'], 'two');
    const layout = join(await dirs.make('layout'), 'oci');
    await exec('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${dest}`, `oci:${layout}:m`]);
  });

  test('pull -a fetches every tag; image prune -f removes what gc would; without -f off a terminal it refuses', async () => {
    const repo = `${registry.host}/alltags/base`;
    for (const tag of ['one', 'two']) await ok('copy', fixtures.base.reference, `${repo}:${tag}`);
    const target = await dirs.make('store');
    const r = await runCli(['pull', '-a', '--store', target, repo], env);
    assert.equal(r.code, 0, r.stderr);
    const names = (await runCli(['images', '--store', target, '--format', '{{.Tag}}'], env)).stdout.trim().split('\n').sort();
    assert.deepEqual(names, ['one', 'two']);
    const tagged = await runCli(['pull', '-a', '--store', target, `${repo}:one`], env);
    assert.equal(tagged.code, 2);
    assert.match(tagged.stderr, /tag can not be used with --all-tags\/-a/);

    const refused = await runCli(['image', 'prune', '--store', target], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /use -f/);
    await runCli(['rmi', '--store', target, `${repo}:one`], env);
    const pruned = await runCli(['image', 'prune', '-a', '-f', '--store', target], env);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.match(pruned.stdout, /Untagged: .*alltags\/base:two/);
    assert.match(pruned.stdout, /Total reclaimed space: /);
    assert.equal((await runCli(['images', '-q', '--store', target], env)).stdout, '');
  });
});
