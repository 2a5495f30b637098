import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * Test PKI made with the `openssl` CLI (OpenSSL 3.0: `x509 -req` cannot start a certificate in
 * the past, so the expired one is signed with `openssl ca -startdate/-enddate`). EC P-256 keys,
 * unencrypted PEM files.
 */

/** A PEM certificate and its private key. */
export interface CertPair {
  cert: string;
  key: string;
}

export interface TestCertificates {
  dir: string;
  /** The test CA that signs every server certificate below except `untrusted`. */
  ca: CertPair;
  /** Server certificate for `IP:127.0.0.1, DNS:localhost` (plus `serverNames`), signed by `ca`. */
  server: CertPair;
  /** Signed by `ca` for `DNS:wrong.example` only: a "wrong name" for 127.0.0.1. */
  wrongName: CertPair;
  /** Signed by `ca` for the server names, valid only in January 2020: "expired". */
  expired: CertPair;
  /** A CA unrelated to `ca`: trusting only it gives "unknown authority". */
  otherCa: CertPair;
  /** Server certificate for the server names signed by `otherCa`: "unknown authority" to a client trusting `ca`. */
  untrusted: CertPair;
  /** CA for client certificates (a registry's `clientCAs`). */
  clientCa: CertPair;
  /** Client certificate (extendedKeyUsage clientAuth) signed by `clientCa`. */
  client: CertPair;
}

export interface CertificateOptions {
  /** subjectAltName entries of the server certificates; default `['IP:127.0.0.1', 'DNS:localhost']`. */
  serverNames?: string[];
}

const run = promisify(execFile);

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

async function makeCa(dir: string, name: string, commonName: string): Promise<CertPair> {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  await openssl([
    'req', '-x509', ...EC_KEY, '-keyout', pair.key, '-out', pair.cert, '-days', '3650', '-subj', `/CN=${commonName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return pair;
}

/** A key and a CSR, and the extension file for the certificate signed from them. */
async function makeRequest(dir: string, name: string, commonName: string, extensions: string[]): Promise<{ pair: CertPair; csr: string; ext: string }> {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await openssl(['req', '-new', ...EC_KEY, '-keyout', pair.key, '-out', csr, '-subj', `/CN=${commonName}`]);
  await writeFile(ext, ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', ...extensions].join('\n') + '\n');
  return { pair, csr, ext };
}

async function signed(dir: string, name: string, ca: CertPair, commonName: string, extensions: string[]): Promise<CertPair> {
  const { pair, csr, ext } = await makeRequest(dir, name, commonName, extensions);
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-out', pair.cert, '-days', '365', '-sha256', '-extfile', ext]);
  return pair;
}

/** Signed by `ca` with a validity window in the past (January 2020). */
async function signedExpired(dir: string, name: string, ca: CertPair, extensions: string[]): Promise<CertPair> {
  const { pair, csr, ext } = await makeRequest(dir, name, 'expired', extensions);
  const caDir = join(dir, `${name}-ca-db`);
  await mkdir(join(caDir, 'new'), { recursive: true });
  await writeFile(join(caDir, 'index.txt'), '');
  await writeFile(join(caDir, 'serial'), '1000\n');
  const config = join(caDir, 'ca.cnf');
  await writeFile(
    config,
    [
      '[ca]', 'default_ca = test',
      '[test]', `database = ${join(caDir, 'index.txt')}`, `new_certs_dir = ${join(caDir, 'new')}`, `serial = ${join(caDir, 'serial')}`,
      'default_md = sha256', 'policy = any', 'unique_subject = no',
      '[any]', 'commonName = supplied',
    ].join('\n') + '\n',
  );
  await openssl([
    'ca', '-batch', '-notext', '-config', config, '-cert', ca.cert, '-keyfile', ca.key, '-in', csr, '-out', pair.cert,
    '-startdate', '20200101000000Z', '-enddate', '20200201000000Z', '-extfile', ext,
  ]);
  return pair;
}

/** Makes the whole test PKI in `dir` (created if missing) and returns every path. */
export async function makeCertificates(dir: string, opts: CertificateOptions = {}): Promise<TestCertificates> {
  await mkdir(dir, { recursive: true });
  const names = opts.serverNames ?? ['IP:127.0.0.1', 'DNS:localhost'];
  const serverExt = [`subjectAltName=${names.join(',')}`, 'extendedKeyUsage=serverAuth'];
  const [ca, otherCa, clientCa] = await Promise.all([
    makeCa(dir, 'ca', 'stratum test CA'),
    makeCa(dir, 'other-ca', 'stratum unrelated CA'),
    makeCa(dir, 'client-ca', 'stratum client CA'),
  ]);
  // Serials are random (-set_serial): -CAcreateserial would race on the CA's .srl file.
  const [server, wrongName, expired, untrusted, client] = await Promise.all([
    signed(dir, 'server', ca, 'stratum test server', serverExt),
    signed(dir, 'wrong-name', ca, 'wrong.example', ['subjectAltName=DNS:wrong.example', 'extendedKeyUsage=serverAuth']),
    signedExpired(dir, 'expired', ca, serverExt),
    signed(dir, 'untrusted', otherCa, 'stratum untrusted server', serverExt),
    signed(dir, 'client', clientCa, 'stratum test client', ['extendedKeyUsage=clientAuth']),
  ]);
  return { dir, ca, server, wrongName, expired, otherCa, untrusted, clientCa, client };
}

export interface CertsDirFiles {
  /** Copied to `ca.crt`. */
  ca?: string;
  /** Copied to `client.cert` (Docker's name for a client certificate in certs.d). */
  clientCert?: string;
  /** Copied to `client.key`. */
  clientKey?: string;
}

/**
 * Lays out Docker's `ROOT/HOST:PORT/` (the `:` kept as is, as Docker names these directories)
 * with the given files; returns that host directory.
 */
export async function writeCertsDir(root: string, hostPort: string, files: CertsDirFiles): Promise<string> {
  const hostDir = join(root, hostPort);
  await mkdir(hostDir, { recursive: true });
  const copies: Array<[string | undefined, string]> = [
    [files.ca, 'ca.crt'],
    [files.clientCert, 'client.cert'],
    [files.clientKey, 'client.key'],
  ];
  for (const [from, name] of copies) if (from) await copyFile(from, join(hostDir, name));
  return hostDir;
}
