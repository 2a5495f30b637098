import { readFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';

export interface HttpsGetOptions {
  /** PEM CA file to trust (else Node's own roots). */
  ca?: string;
  /** PEM client certificate and key files to present. */
  client?: { cert: string; key: string };
}

/**
 * A GET by a test itself over https, with its own trust and client certificate; resolves the
 * status and body, rejects with Node's TLS error (its `code` says which: CERT_HAS_EXPIRED,
 * ERR_TLS_CERT_ALTNAME_INVALID, UNABLE_TO_VERIFY_LEAF_SIGNATURE…).
 */
export function httpsGetText(url: string, opts: HttpsGetOptions = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(
      url,
      {
        agent: false,
        ...(opts.ca ? { ca: readFileSync(opts.ca) } : {}),
        ...(opts.client ? { cert: readFileSync(opts.client.cert), key: readFileSync(opts.client.key) } : {}),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.once('error', reject);
      },
    );
    req.once('error', reject);
  });
}
