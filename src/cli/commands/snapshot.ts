import type { Engine, SnapshotEntry } from '../../engine/engine.js';
import type { Mount } from '../../snapshotter/snapshotter.js';
import { normalizeDriverName } from '../../snapshotter/driver.js';
import { SNAPSHOT_FIELDS } from '../commands.js';
import { openEngine, UsageError } from '../context.js';
import type { Invocation } from '../invocation.js';
import { listingFormat } from '../listing.js';
import { humanSize, table } from '../format.js';

const READ_ONLY = new Set(['ls', 'tree', 'info', 'mounts', 'usage']);

export async function run(inv: Invocation): Promise<number> {
  const sub = inv.path[1]!;
  const flags = inv.globals;
  const engine = await openEngine(flags, { existing: READ_ONLY.has(sub) });
  try {
    const only = flags.snapshotter ? normalizeDriverName(flags.snapshotter) : undefined;
    return await runSub(engine, inv, sub, [...inv.positionals], { target: inv.string('target'), force: inv.bool('force'), only });
  } finally {
    await engine.close();
  }
}

async function runSub(engine: Engine, inv: Invocation, sub: string, args: string[], opts: { target: string | undefined; force: boolean; only: string | undefined }): Promise<number> {
  const out = (text: string) => inv.stdout.line(text);
  const list = async (...filters: string[]): Promise<SnapshotEntry[]> => (await engine.listSnapshots(...filters)).filter((s) => opts.only === undefined || s.snapshotter === opts.only);
  switch (sub) {
    case 'ls': {
      const columns = inv.bool('quiet') ? ['Key'] : opts.only !== undefined ? ['Key', 'Parent', 'Kind'] : ['Key', 'Parent', 'Kind', 'Snapshotter'];
      const print = listingFormat(inv.bool('quiet') ? '{{.Key}}' : inv.string('format'), { fields: SNAPSHOT_FIELDS, headers: {}, columns });
      const entries = await list(...args);
      print(
        inv.stdout,
        entries.map((i) => ({ Key: i.name, Parent: i.parent ?? '', Kind: i.kind, Snapshotter: i.snapshotter, Created: i.created.toISOString(), Updated: i.updated.toISOString(), Labels: i.labels })),
      );
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
      const { snapshotter, info } = await engine.findSnapshot(args[0]!);
      out(JSON.stringify({ ...info, snapshotter: snapshotter.name }, null, 2));
      return 0;
    }
    case 'prepare':
    case 'view': {
      const options = opts.target !== undefined ? { target: opts.target } : {};
      const mounts = sub === 'prepare' ? await engine.prepare(args[0]!, args[1], options) : await engine.view(args[0]!, args[1], options);
      if (opts.target === undefined) out(mountCommand(mounts, '<target>'));
      return 0;
    }
    case 'mounts':
      out(mountCommand(await engine.snapshotMounts(args[0]!), args[1] ?? '<target>'));
      return 0;
    case 'commit': {
      const { unmounted } = await engine.commitSnapshot(args[0]!, args[1]!);
      for (const target of unmounted) inv.stderr.line(`stratum: unmounted ${target} before the commit`);
      return 0;
    }
    case 'label': {
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
      for (const key of args) {
        const { unmounted } = await engine.removeSnapshot(key, { force: opts.force });
        for (const target of unmounted) inv.stderr.line(`stratum: unmounted ${target}`);
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
