import { CertificateError } from '../../errors.js';

/** OpenSSL's verification results (as Node names them) that mean "no trusted CA signed this". */
const UNKNOWN_AUTHORITY = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
]);

/** TLS alerts a server sends when it wanted a (valid) client certificate. */
const CLIENT_CERT_ALERTS = new Set([
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
]);

/**
 * A TLS failure as the user can act on it: the certificate problem in words (unknown authority,
 * expired, wrong name, a client certificate wanted), the host, and where certificates go.
 * undefined for anything that is not a certificate problem.
 */
export function certificateProblem(err: unknown, host: string, certsDir: string | undefined): CertificateError | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    const where = certsDir ? `${certsDir}/${host}` : `certs.d/${host}`;
    if (UNKNOWN_AUTHORITY.has(code)) {
      return new CertificateError(host, 'unknown-authority', `certificate signed by unknown authority (${code}); to trust its CA put it in ${where}/ca.crt`, err);
    }
    if (code === 'INVALID_PURPOSE') {
      return new CertificateError(host, 'wrong-purpose', `certificate is not one for a TLS server (${code}: a CA certificate or a client certificate served as the server's?)`, err);
    }
    if (code === 'CERT_HAS_EXPIRED') return new CertificateError(host, 'expired', `certificate has expired (${certDates(e)})`, err);
    if (code === 'CERT_NOT_YET_VALID') return new CertificateError(host, 'not-yet-valid', `certificate is not valid yet (${certDates(e)})`, err);
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      const reason = (e as { reason?: unknown }).reason;
      return new CertificateError(host, 'wrong-name', `certificate is not valid for ${host.replace(/:\d+$/, '')}${typeof reason === 'string' ? `: ${reason}` : ''}`, err);
    }
    if (CLIENT_CERT_ALERTS.has(code)) {
      return new CertificateError(host, 'client-certificate', `the registry refused the TLS handshake (${code}): it wants a client certificate it trusts; put client.cert and client.key in ${where}/`, err);
    }
  }
  return undefined;
}

function certDates(e: unknown): string {
  const cert = (e as { cert?: { valid_from?: string; valid_to?: string } }).cert;
  return cert?.valid_from ? `valid from ${cert.valid_from} to ${cert.valid_to}` : 'see its validity dates';
}
