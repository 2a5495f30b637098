/**
 * The conformance suite as a third-party backend author uses it: only the package's public
 * entry points (`stratum`, `stratum/snapshotter/testsuite`), and a backend of their own — here a
 * wrapper that forwards every call to stratum's native snapshotter, as an out-of-tree backend
 * built on it would.
 */
import { openSnapshotter, type Snapshotter } from 'stratum';
import { runConformance } from 'stratum/snapshotter/testsuite';

class ForwardingSnapshotter implements Snapshotter {
  readonly name = 'forwarding';
  private constructor(private readonly inner: Snapshotter) {}
  static async open(root: string): Promise<ForwardingSnapshotter> {
    return new ForwardingSnapshotter(await openSnapshotter('native', root));
  }
  get capabilities() { return this.inner.capabilities; }
  get applyMode() { return this.inner.applyMode; }
  get root() { return this.inner.root; }
  applyDir: Snapshotter['applyDir'] = (key) => this.inner.applyDir(key);
  stat: Snapshotter['stat'] = (key) => this.inner.stat(key);
  update: Snapshotter['update'] = (info, ...paths) => this.inner.update(info, ...paths);
  usage: Snapshotter['usage'] = (key) => this.inner.usage(key);
  mounts: Snapshotter['mounts'] = (key) => this.inner.mounts(key);
  prepare: Snapshotter['prepare'] = (key, parent, options) => this.inner.prepare(key, parent, options);
  view: Snapshotter['view'] = (key, parent, options) => this.inner.view(key, parent, options);
  commit: Snapshotter['commit'] = (name, key, options) => this.inner.commit(name, key, options);
  remove: Snapshotter['remove'] = (key) => this.inner.remove(key);
  walk: Snapshotter['walk'] = (fn, ...filters) => this.inner.walk(fn, ...filters);
  cleanup: Snapshotter['cleanup'] = () => this.inner.cleanup();
  close: Snapshotter['close'] = () => this.inner.close();
}

runConformance({
  name: 'a third-party backend (forwarding to native)',
  open: (root) => ForwardingSnapshotter.open(root),
  async skipReason() {
    return process.getuid?.() !== 0 ? 'not root (bind mounts and chown need it)' : undefined;
  },
});
