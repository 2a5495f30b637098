/** Engines for registry tests: fresh stores, repositories of their own, errors as codes. */
import { Engine } from '../../src/engine/engine.js';
import { isStratumError } from '../../src/errors.js';
import { StaticCredentials } from '../../src/registry/credentials.js';
import type { TestRegistry } from './registry.js';
import type { TempDirs } from './tmp.js';

/** An Engine on a fresh store under `tmp`, with no credentials and no config file. */
export async function openTestEngine(tmp: TempDirs, label: string): Promise<Engine> {
  return Engine.open({ root: await tmp.make(label), credentials: new StaticCredentials({}), env: { STRATUM_CONFIG: '' } });
}

/** A repository of its own holding a copy of library/app:1 (pushFixtures'), so no test sees another's referrers. */
export async function copyOfApp(engine: Engine, registry: TestRegistry, name: string): Promise<string> {
  const ref = `${registry.host}/${name}:1`;
  await engine.copy(`${registry.host}/library/app:1`, ref);
  return ref;
}

/** The stratum error a promise rejects with (its code and message), or code `resolved`; anything else rethrown. */
export async function stratumError(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (err) {
    if (isStratumError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  return { code: 'resolved', message: '' };
}
