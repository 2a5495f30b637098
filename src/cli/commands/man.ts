import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../args.js';
import { commandPaths } from '../completion.js';
import type { Invocation } from '../invocation.js';
import { allManPages, commandManPage, mainManPage } from '../manpage.js';

export async function run(inv: Invocation): Promise<number> {
  const dir = inv.string('output');
  if (dir !== undefined) {
    await mkdir(dir, { recursive: true });
    for (const page of allManPages()) await writeFile(join(dir, page.file), page.text);
    inv.stdout.line(`wrote ${allManPages().length} pages to ${dir}`);
    return 0;
  }
  if (inv.positionals.length === 0) {
    inv.stdout.write(mainManPage());
    return 0;
  }
  const wanted = inv.positionals.join(' ');
  const hit = commandPaths().find(([path, spec]) => path.join(' ') === wanted || (path.length === 1 && spec.aliases?.includes(wanted)));
  if (!hit) throw new UsageError(`no man page for ${JSON.stringify(wanted)}: no such command`);
  inv.stdout.write(commandManPage(hit[0], hit[1]));
  return 0;
}
