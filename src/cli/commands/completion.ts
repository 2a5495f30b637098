import { UsageError } from '../args.js';
import { bashCompletion, fishCompletion, zshCompletion } from '../completion.js';
import type { Invocation } from '../invocation.js';

export async function run(inv: Invocation): Promise<number> {
  const shell = inv.arg(0);
  const script = shell === 'bash' ? bashCompletion() : shell === 'zsh' ? zshCompletion() : shell === 'fish' ? fishCompletion() : undefined;
  if (script === undefined) throw new UsageError(`unsupported shell ${JSON.stringify(shell)}: bash, zsh or fish`);
  inv.stdout.write(script);
  return 0;
}
