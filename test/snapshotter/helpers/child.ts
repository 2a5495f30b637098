/**
 * A child process that drives a snapshotter, for tests that need a second process or a SIGKILL.
 * Usage: node child.js <mode> <backend> <root> [args…]
 *   mutate-loop: forever: prepare a-i, commit c-i, update c-i labels {n: i}; prints "step <i> <phase>" after each durable step
 *   prepare-many <parent> <prefix> <n>: prepares <prefix>-0…n-1 on parent, prints JSON of the keys done
 *   prepare-one <key> <parent>: prints "ok" or the error code
 */
import { openSnapshotter, type SnapshotterName } from '../../../src/snapshotter/index.js';
import { isStratumError } from '../../../src/errors.js';

const [mode, backend, root, ...args] = process.argv.slice(2);
const s = await openSnapshotter(backend as SnapshotterName, root!);

function say(line: string): void {
  process.stdout.write(line + '\n');
}

switch (mode) {
  case 'mutate-loop': {
    const start = Number(args[0] ?? 0);
    say('ready');
    for (let i = start; ; i++) {
      await s.prepare(`a-${i}`, i === 0 ? undefined : `c-${i - 1}`, { labels: { phase: 'active' } });
      say(`step ${i} prepared`);
      await s.commit(`c-${i}`, `a-${i}`, { labels: { phase: 'committed' } });
      say(`step ${i} committed`);
      await s.update({ name: `c-${i}`, labels: { n: String(i), pad: 'x'.repeat(2000) } }, 'labels.n', 'labels.pad');
      say(`step ${i} labelled`);
    }
  }
  case 'prepare-many': {
    const [parent, prefix, n] = args as [string, string, string];
    const done: string[] = [];
    for (let i = 0; i < Number(n); i++) {
      await s.prepare(`${prefix}-${i}`, parent);
      done.push(`${prefix}-${i}`);
    }
    say(JSON.stringify(done));
    break;
  }
  case 'prepare-one': {
    const [key, parent] = args as [string, string];
    try {
      await s.prepare(key, parent);
      say('ok');
    } catch (err) {
      say(isStratumError(err) ? err.code : String(err));
    }
    break;
  }
  default:
    throw new Error(`unknown mode ${mode}`);
}
await s.close();
