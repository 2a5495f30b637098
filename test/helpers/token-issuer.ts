import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A tiny Docker token server on 127.0.0.1: `GET /token?service=…&scope=…` with optional Basic
 * credentials answers `{token, access_token, expires_in}` with an opaque random token. Counts
 * what it issued so tests can assert token reuse.
 */
export interface TokenIssuerOptions {
  /** user → password accepted over Basic auth. */
  users?: Record<string, string>;
  /** Issue tokens to requests without credentials. Default: true when no users are given. */
  anonymous?: boolean;
  /** Lifetime in seconds sent as expires_in (and enforced by isValid). Default 300. Omitted from the answer when 0. */
  expiresIn?: number;
  /** Which JSON field carries the token. Default 'token'. */
  field?: 'token' | 'access_token' | 'both';
}

export interface TokenRequest {
  service: string | null;
  /** Every `scope` parameter, space-separated (as one OAuth scope string); null without any. */
  scope: string | null;
  /** User name from Basic auth, or undefined for an anonymous request. */
  user?: string;
  status: number;
}

export class TokenIssuer {
  /** Tokens issued so far. */
  issued = 0;
  readonly requests: TokenRequest[] = [];
  private readonly tokens = new Map<string, number>();

  private constructor(private readonly server: Server) {}

  static async start(options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
    const server = createServer();
    const issuer = new TokenIssuer(server);
    server.on('request', (req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const entry: TokenRequest = { service: url.searchParams.get('service'), scope: url.searchParams.getAll('scope').join(' ') || null, status: 0 };
      issuer.requests.push(entry);
      const answer = (status: number, body: object) => {
        entry.status = status;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (url.pathname !== '/token') return answer(404, { details: 'not found' });
      const auth = req.headers.authorization;
      if (auth?.startsWith('Basic ')) {
        const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        const user = decoded.slice(0, colon);
        entry.user = user;
        const users = options.users ?? {};
        if (colon < 0 || !Object.hasOwn(users, user) || users[user] !== decoded.slice(colon + 1)) {
          return answer(401, { details: 'incorrect username or password' });
        }
      } else if (!(options.anonymous ?? options.users === undefined)) {
        return answer(401, { details: 'authentication required' });
      }
      const token = randomBytes(16).toString('hex');
      const expiresIn = options.expiresIn ?? 300;
      issuer.tokens.set(token, Date.now() + (expiresIn > 0 ? expiresIn : 60) * 1000);
      issuer.issued++;
      const field = options.field ?? 'token';
      const body: Record<string, unknown> = { issued_at: new Date().toISOString() };
      if (field === 'token' || field === 'both') body.token = token;
      if (field === 'access_token' || field === 'both') body.access_token = token;
      if (expiresIn > 0) body.expires_in = expiresIn;
      answer(200, body);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return issuer;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The realm to put in a Bearer challenge. */
  get realm(): string {
    return `${this.url}/token`;
  }

  /** True for a token this issuer handed out that has not expired or been revoked. */
  isValid(token: string): boolean {
    const until = this.tokens.get(token);
    return until !== undefined && until > Date.now();
  }

  /** Makes every token issued so far invalid (a server-side revocation). */
  revokeAll(): void {
    this.tokens.clear();
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
