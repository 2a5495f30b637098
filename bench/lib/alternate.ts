import { mb } from './stats.js';

interface Sample {
  wallSeconds: number;
  peakRssBytes: number;
}

/**
 * One discarded warm-up run of each tool (it warms the page cache and the binaries), then
 * `runs` rounds that alternate the tools (ABAB…), so a drift of the machine touches them alike.
 * Logs each run; returns every tool's kept runs by name.
 */
export async function alternateRuns<N extends string, T extends { name: N }, S extends Sample>(
  tools: readonly T[],
  runs: number,
  once: (tool: T) => Promise<S>,
  log: (line: string) => void,
  describe: (s: S) => string = (s) => `${s.wallSeconds.toFixed(2)} s, ${mb(s.peakRssBytes)} MB`,
): Promise<Map<N, S[]>> {
  const results = new Map<N, S[]>(tools.map((t) => [t.name, []]));
  for (const tool of tools) log(`warm-up ${tool.name}: ${describe(await once(tool))} (discarded)`);
  for (let i = 1; i <= runs; i++) {
    for (const tool of tools) {
      const s = await once(tool);
      results.get(tool.name)!.push(s);
      log(`run ${i}/${runs} ${tool.name}: ${describe(s)}`);
    }
  }
  return results;
}
