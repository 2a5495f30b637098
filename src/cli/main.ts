#!/usr/bin/env node
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { describeFailure } from './invocation.js';
import { run } from './run.js';

// A pull allocates many short-lived objects around the bytes it streams. V8 starts with 1 MiB
// semi-spaces and would grow them to 16 MiB, which only adds resident memory (~15-30 MB measured)
// without making the pull faster; but at 1 MiB a pull scavenges twice as often as at 2 MiB (117
// against 61 scavenges, +0.1 s of main-thread GC on bench:unpack). So the young generation may
// grow once, to 2 MiB semi-spaces, and is then held there. (Runtime flags cannot set its size:
// V8 reads --min-semi-space-size only when the heap is set up.) Library users keep V8's defaults.
holdYoungGenerationAt(4 << 20);
// undici parses HTTP with llhttp compiled to WebAssembly. V8 would also recompile it with its
// optimising tier in the background, on every start: CPU taken from the transfer on a small
// machine, and ~15-20 MB of resident memory, for a parser that mostly skips over blob bodies.
// Its baseline (Liftoff) code is as fast for that (bench:pull: 0.52 s against 0.54 s).
setFlagsFromString('--liftoff-only');
// V8 optimises a function with TurboFan once it has run for a budget of 132 KB of bytecode; the
// compile runs on a background thread. A pull's hot loops are few and most of its code runs a
// handful of times, so at the default budget many functions are compiled for nothing, on cores
// the transfer and extraction need (bench:unpack on 2 cores: 1.24 s median at the default, 1.07 s
// at 600 KB, the floor 1.02 s). A larger budget keeps TurboFan for the really hot code.
setFlagsFromString('--interrupt-budget=600000');

/** Lets V8's new space (both semi-spaces) grow to `bytes`, then stops its growth. */
function holdYoungGenerationAt(bytes: number): void {
  const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
  if (newSpace() >= bytes) {
    setFlagsFromString('--semi-space-growth-factor=1');
    return;
  }
  const observer = new PerformanceObserver(() => {
    if (newSpace() < bytes) return;
    setFlagsFromString('--semi-space-growth-factor=1');
    observer.disconnect();
  });
  observer.observe({ entryTypes: ['gc'] });
}

// A failure outside the command's own await (a stray stream error) still ends in one line, not a stack.
const debug = process.argv.includes('--debug') || process.argv.includes('-D');
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (err: unknown) => {
    const failure = describeFailure(err, debug);
    if (failure.message) process.stderr.write(`${failure.message}\n`);
    process.exit(failure.status);
  });
}

process.exitCode = await run(process.argv.slice(2));
