import { parseArgs } from 'node:util';
import type { Info, Mount, Snapshotter } from '../../snapshotter/snapshotter.js';
import { mountAll } from '../../snapshotter/mount.js';
import { GLOBAL_OPTIONS, openImageSnapshotter, openStore, UsageError, type GlobalFlags } from '../context.js';
import { humanSize, table } from '../format.js';

export const usage = `Usage: stratum snapshot [--snapshotter NAME] [--store DIR] COMMAND

Work with the snapshots behind images and containers (containerd's \`ctr snapshot\`).

Commands:
  ls [FILTER...]                 List snapshots (filters: kind==active, parent==X, labels.k==v, …)
  tree                           Show snapshots as a tree of parents
  info KEY                       Show one snapshot as JSON
  prepare KEY [PARENT] [--target DIR]   Create a writable snapshot (mount it at DIR)
  view KEY [PARENT] [--target DIR]      Create a read-only snapshot (mount it at DIR)
  mounts KEY                     Print the mount command for an active or view snapshot
  commit NAME KEY                Commit an active snapshot as NAME
  label KEY k=v…                 Set labels (k= removes one)
  rm KEY...                      Remove snapshots
  usage [KEY]                    Disk usage (size and inodes)
  cleanup                        Reclaim space that removed snapshots left behind`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...GLOBAL_OPTIONS, target: { type: 'string' } } });
  const [sub, ...args] = positionals;
  if (!sub) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const store = await openStore(values as GlobalFlags);
  const snapshotter = await openImageSnapshotter(values as GlobalFlags, store);
  try {
    return await runSub(snapshotter, sub, args, values.target);
  } finally {
    await snapshotter.close();
  }
}

async function runSub(s: Snapshotter, sub: string, args: string[], target: string | undefined): Promise<number> {
  const out = (text: string) => process.stdout.write(`${text}\n`);
  const need = (n: number, what: string) => {
    if (args.length < n) throw new UsageError(`snapshot ${sub} needs ${what}`);
  };
  switch (sub) {
    case 'ls': {
      const rows: string[][] = [];
      await s.walk((i) => void rows.push([i.name, i.parent ?? '', i.kind]), ...args);
      out(table(['KEY', 'PARENT', 'KIND'], rows.sort((a, b) => a[0]!.localeCompare(b[0]!))));
      return 0;
    }
    case 'tree': {
      const all: Info[] = [];
      await s.walk((i) => void all.push(i));
      const children = new Map<string, Info[]>();
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
    case 'info':
      need(1, 'KEY');
      out(JSON.stringify(await s.stat(args[0]!), null, 2));
      return 0;
    case 'prepare':
    case 'view': {
      need(1, 'KEY');
      const mounts = sub === 'prepare' ? await s.prepare(args[0]!, args[1]) : await s.view(args[0]!, args[1]);
      if (target) await mountAll(mounts, target);
      else out(mountCommand(mounts, '<target>'));
      return 0;
    }
    case 'mounts':
      need(1, 'KEY');
      out(mountCommand(await s.mounts(args[0]!), args[1] ?? '<target>'));
      return 0;
    case 'commit':
      need(2, 'NAME and KEY');
      await s.commit(args[0]!, args[1]!);
      return 0;
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
      const info = await s.update({ name: args[0]!, labels }, ...paths);
      out(JSON.stringify(info.labels));
      return 0;
    }
    case 'rm':
      need(1, 'KEY');
      for (const key of args) await s.remove(key);
      return 0;
    case 'usage': {
      const rows: string[][] = [];
      const keys: string[] = args.length > 0 ? args : [];
      if (keys.length === 0) await s.walk((i) => void keys.push(i.name));
      for (const key of keys.sort()) {
        const u = await s.usage(key);
        rows.push([key, humanSize(u.size, 4), String(u.inodes)]);
      }
      out(table(['KEY', 'SIZE', 'INODES'], rows));
      return 0;
    }
    case 'cleanup':
      await s.cleanup();
      return 0;
    default:
      throw new UsageError(`unknown snapshot command ${JSON.stringify(sub)}`);
  }
}

function mountCommand(mounts: Mount[], target: string): string {
  return mounts.map((m) => `mount -t ${m.type} ${m.source} ${target}${m.options.length > 0 ? ` -o ${m.options.join(',')}` : ''}`).join('\n');
}
