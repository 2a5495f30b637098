import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { digestOf } from '../../src/oci/digest.js';
import { PullProgress, type ProgressMode } from '../../src/cli/progress.js';
import type { PullEvent } from '../../src/image/pull.js';

function render(mode: ProgressMode, events: PullEvent[], unpack = false): string {
  let out = '';
  const sink = new Writable({ write: (chunk, _enc, done) => ((out += chunk.toString()), done()) });
  const progress = new PullProgress(sink, mode, { unpack });
  for (const e of events) progress.event(e);
  return out;
}

const a = digestOf('layer a');
const b = digestOf('layer b');
const events: PullEvent[] = [
  { type: 'layers', layers: [{ digest: a, size: 1000 }, { digest: b, size: 2000 }] },
  { type: 'exists', digest: a, size: 1000 },
  { type: 'downloading', digest: b, current: 500, total: 2000 },
  { type: 'downloading', digest: b, current: 1500, total: 2000 },
  { type: 'downloading', digest: digestOf('config'), current: 10, total: 10 },
  { type: 'verifying', digest: b },
  { type: 'complete', digest: b, size: 2000, resumedFrom: 0 },
];

describe('pull progress rendering', () => {
  it('plain (not a TTY): one line per state change, config blob not shown', () => {
    const id = (d: string) => d.slice(7, 19);
    assert.equal(
      render('plain', events),
      [
        `${id(a)}: Pulling fs layer`,
        `${id(b)}: Pulling fs layer`,
        `${id(a)}: Already exists`,
        `${id(b)}: Downloading`, // off a terminal docker prints no bars
        `${id(b)}: Verifying Checksum`,
        `${id(b)}: Download complete`,
        `${id(b)}: Pull complete`,
        '',
      ].join('\n'),
    );
  });

  it('TTY: each layer keeps its line and is redrawn in place', () => {
    const out = render('tty', events);
    assert.equal(out.split('\n').filter((l) => l.includes('Pulling fs layer')).length, 2);
    // Layer b is the last of two lines: cursor up 1, clear line, rewrite, cursor down 1.
    assert.ok(out.includes(`\x1b[1A\r\x1b[2K${b.slice(7, 19)}: Downloading [${'='.repeat(37)}>${' '.repeat(12)}]  1.5kB/2kB`));
    assert.ok(out.includes(`\x1b[2A\r\x1b[2K${a.slice(7, 19)}: Already exists\r\x1b[2B`));
    assert.ok(out.endsWith(`\x1b[1A\r\x1b[2K${b.slice(7, 19)}: Pull complete\r\x1b[1B`));
  });

  it('JSON: one object per event with a short id; quiet: nothing', () => {
    const lines = render('json', events).trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, events.length);
    assert.equal(lines[1].id, a.slice(7, 19));
    assert.equal(render('quiet', events), '');
  });

  it('with unpack: Pull complete once extracted; a blob that is no layer (schema1 empty blob) completes when the image is tagged', () => {
    const id = (d: string) => d.slice(7, 19);
    const empty = digestOf('empty throwaway');
    const out = render(
      'plain',
      [
        { type: 'layers', layers: [{ digest: a }, { digest: empty }] },
        { type: 'complete', digest: a, size: 10, resumedFrom: 0 },
        { type: 'complete', digest: empty, size: 32, resumedFrom: 0 },
        { type: 'extracting', digest: a, current: 10, total: 10 },
        { type: 'unpacked', digest: a, chainId: a, existed: false },
        { type: 'tagged', name: 'docker.io/library/x:1', digest: b },
      ],
      true,
    );
    assert.deepEqual(out.trimEnd().split('\n'), [
      `${id(a)}: Pulling fs layer`,
      `${id(empty)}: Pulling fs layer`,
      `${id(a)}: Download complete`,
      `${id(empty)}: Download complete`,
      `${id(a)}: Extracting`,
      `${id(a)}: Pull complete`,
      `${id(empty)}: Pull complete`,
    ]);
  });
});
