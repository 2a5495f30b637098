import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { UsageError } from '../args.js';
import { withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';

/** docker login: -u, --password-stdin or a prompt; "Login Succeeded". The password is never printed. */
export async function run(inv: Invocation): Promise<number> {
  const server = inv.positionals[0] ?? 'docker.io';
  let username = inv.string('username');
  let password = inv.string('password');
  if (password !== undefined && inv.bool('password-stdin')) throw new UsageError('--password and --password-stdin are mutually exclusive');
  if (password !== undefined) inv.stderr.line('WARNING! Using --password via the CLI is insecure. Use --password-stdin.');
  if (inv.bool('password-stdin')) {
    if (username === undefined) throw new UsageError('must provide --username with --password-stdin');
    password = (await readAll(process.stdin)).replace(/\r?\n$/, '');
  }
  if (username === undefined) {
    if (!process.stdin.isTTY) throw new UsageError('cannot prompt for a user name: standard input is not a terminal (give --username and --password-stdin)');
    username = (await prompt('Username: ', false)).trim();
  }
  if (password === undefined) {
    if (!process.stdin.isTTY) throw new UsageError('cannot prompt for a password: standard input is not a terminal (use --password-stdin)');
    password = await prompt('Password: ', true);
  }
  if (username === '' || password === '') throw new UsageError('user name and password must not be empty');
  const result = await withEngine(inv.globals, (engine) => engine.login(server, { username: username!, password: password! }), { existing: false });
  if (!result.storedIn.startsWith('docker-credential-')) {
    inv.stderr.line(`WARNING! Your password will be stored unencrypted in ${result.storedIn}.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/engine/reference/commandline/login/#credentials-store`);
  }
  inv.stdout.line('Login Succeeded');
  return 0;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** A prompt on the terminal; `secret` keeps the typed characters off the screen. */
function prompt(question: string, secret: boolean): Promise<string> {
  return new Promise((resolve) => {
    let muted = false;
    const output = new Writable({
      write(chunk, _enc, done) {
        if (!muted) process.stderr.write(chunk);
        done();
      },
    });
    const rl = createInterface({ input: process.stdin, output, terminal: true });
    rl.question(question, (answer) => {
      rl.close();
      if (secret) process.stderr.write('\n');
      resolve(answer);
    });
    muted = secret;
  });
}
