import type { Engine, SnapshotEntry } from '../../engine/engine.js';
import type { Mount } from '../../snapshotter/snapshotter.js';
import { normalizeDriverName } from '../../snapshotter/driver.js';
import { openEngine, parseCommand, UsageError, type GlobalFlags } from '../context.js';
import { humanSize, table } from '../format.js';

export const usage = `Usage: stratum snapshot [--snapshotter NAME] [--store DIR] COMMAND

Work with the snapshots behind images and containers (containerd's \`ctr snapshot\`). A key names
one snapshot in the store, whichever storage driver holds it; new snapshots without a parent go
to the store's driver (or --snapshotter), with one to the parent's.

Commands:
  ls [FILTER...]                 List snapshots (filters: kind==active, parent==X, labels.k==v, …);
                                 every driver's, or only --snapshotter's
  tree                           Show snapshots as a tree of parents
  info KEY                       Show one snapshot as JSON
  prepare KEY [PARENT] [--target DIR]   Create a writable snapshot (mount it at DIR)
  view KEY [PARENT] [--target DIR]      Create a read-only snapshot (mount it at DIR)
  mounts KEY                     Print the mount command for an active or view snapshot
  commit NAME KEY                Commit an active snapshot as NAME (its mounts are undone first)
  label KEY k=v…                 Set labels (k= removes one)
  rm [--force] KEY...            Remove snapshots (--force: unmount a mounted one first)
  usage [KEY]                    Disk usage (size and inodes)
  cleanup                        Reclaim space that removed snapshots left behind`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(argv, { target: { type: 'string' }, force: { type: 'boolean', short: 'f' } });
  const [sub, ...args] = positionals;
  if (!sub) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const flags = values as GlobalFlags;
  const engine = await openEngine(flags);
  try {
    const only = flags.snapshotter ? normalizeDriverName(flags.snapshotter) : undefined;
    return await runSub(engine, sub, args, { target: values.target, force: values.force === true, only });
  } finally {
    await engine.close();
  }
}

async function runSub(engine: Engine, sub: string, args: string[], opts: { target: string | undefined; force: boolean; only: string | undefined }): Promise<number> {
  const out = (text: string) => process.stdout.write(`${text}\n`);
  const need = (n: number, what: string) => {
    if (args.length < n) throw new UsageError(`snapshot ${sub} needs ${what}`);
  };
  const list = async (...filters: string[]): Promise<SnapshotEntry[]> => (await engine.listSnapshots(...filters)).filter((s) => opts.only === undefined || s.snapshotter === opts.only);
  switch (sub) {
    case 'ls': {
      const entries = await list(...args);
      if (opts.only !== undefined) out(table(['KEY', 'PARENT', 'KIND'], entries.map((i) => [i.name, i.parent ?? '', i.kind])));
      else out(table(['KEY', 'PARENT', 'KIND', 'SNAPSHOTTER'], entries.map((i) => [i.name, i.parent ?? '', i.kind, i.snapshotter])));
      return 0;
    }
    case 'tree': {
      const all = await list();
      const children = new Map<string, SnapshotEntry[]>();
      for (const i of all) children.set(i.parent ?? '', [...(children.get(i.parent ?? '') ?? []), i]);
      const print = (parent: string, depth: number) => {
        for (const i of (children.get(parent) ?? []).sort((a, b) => a.name.localeCompare(b.name))) {
          out(`${'  '.repeat(depth)}\\_ ${i.name}${i.kind === 'committed' ? '' : ` (${i.kind})`}`);
          print(i.name, depth + 1);
        }
      };
      print('', 0);
      return 0;
    }
    case 'info': {
      need(1, 'KEY');
      const { snapshotter, info } = await engine.findSnapshot(args[0]!);
      out(JSON.stringify({ ...info, snapshotter: snapshotter.name }, null, 2));
      return 0;
    }
    case 'prepare':
    case 'view': {
      need(1, 'KEY');
      const options = opts.target !== undefined ? { target: opts.target } : {};
      const mounts = sub === 'prepare' ? await engine.prepare(args[0]!, args[1], options) : await engine.view(args[0]!, args[1], options);
      if (opts.target === undefined) out(mountCommand(mounts, '<target>'));
      return 0;
    }
    case 'mounts':
      need(1, 'KEY');
      out(mountCommand(await engine.snapshotMounts(args[0]!), args[1] ?? '<target>'));
      return 0;
    case 'commit': {
      need(2, 'NAME and KEY');
      const { unmounted } = await engine.commitSnapshot(args[0]!, args[1]!);
      for (const target of unmounted) process.stderr.write(`stratum: unmounted ${target} before the commit\n`);
      return 0;
    }
    case 'label': {
      need(2, 'KEY and k=v');
      const labels: Record<string, string> = {};
      const paths: string[] = [];
      for (const kv of args.slice(1)) {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new UsageError(`label ${JSON.stringify(kv)} is not k=v`);
        const value = kv.slice(eq + 1);
        if (value !== '') labels[kv.slice(0, eq)] = value;
        paths.push(`labels.${kv.slice(0, eq)}`);
      }
      const info = await engine.updateSnapshotLabels(args[0]!, labels, paths);
      out(JSON.stringify(info.labels));
      return 0;
    }
    case 'rm':
      need(1, 'KEY');
      for (const key of args) {
        const { unmounted } = await engine.removeSnapshot(key, { force: opts.force });
        for (const target of unmounted) process.stderr.write(`stratum: unmounted ${target}\n`);
      }
      return 0;
    case 'usage': {
      const rows: string[][] = [];
      const keys: string[] = args.length > 0 ? args : (await list()).map((i) => i.name);
      for (const key of keys.sort()) {
        const u = await engine.snapshotUsage(key);
        rows.push([key, humanSize(u.size, 4), String(u.inodes)]);
      }
      out(table(['KEY', 'SIZE', 'INODES'], rows));
      return 0;
    }
    case 'cleanup':
      for (const s of await engine.snapshotters()) if (opts.only === undefined || s.name === opts.only) await s.cleanup();
      return 0;
    default:
      throw new UsageError(`unknown snapshot command ${JSON.stringify(sub)}`);
  }
}

function mountCommand(mounts: Mount[], target: string): string {
  return mounts.map((m) => `mount -t ${m.type} ${m.source} ${target}${m.options.length > 0 ? ` -o ${m.options.join(',')}` : ''}`).join('\n');
}
