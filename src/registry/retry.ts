import { setTimeout as sleep } from 'node:timers/promises';
import { RateLimitError, RedirectTargetError, RegistryError, StratumError } from '../errors.js';
import type { RetryConfig } from './hosts.js';

export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 5, baseDelayMs: 500, maxDelayMs: 30_000, maxRetryAfterMs: 60_000 };

export function retryPolicy(config?: RetryConfig): RetryPolicy {
  return { ...DEFAULT_RETRY_POLICY, ...stripUndefined(config ?? {}) };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const RETRYABLE_SOCKET_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/**
 * Connection failures (anywhere in the `cause` chain), 5xx, 408 and 429 are worth another try;
 * everything else (404, 401, digest mismatch, disk errors) is not.
 */
export function isRetryable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof RateLimitError || e instanceof RedirectTargetError) return true;
    if (e instanceof RegistryError) return e.status !== undefined && (e.status >= 500 || e.status === 408);
    if (e instanceof StratumError && e.code !== 'ERR_NETWORK') return false;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && RETRYABLE_SOCKET_CODES.has(code)) return true;
  }
  return false;
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** Exponential backoff with full jitter in [base*2^n / 2, base*2^n], capped; a server's Retry-After wins (capped too). */
export function backoffDelay(attempt: number, policy: RetryPolicy, err?: unknown, random = Math.random): number {
  const retryAfter = (err as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  if (typeof retryAfter === 'number') return Math.min(retryAfter, policy.maxRetryAfterMs);
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + (random() * exp) / 2);
}

export interface RetryHooks {
  signal?: AbortSignal;
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
}

/** Runs fn until it succeeds, throws a non-retryable error, or maxAttempts is used up (the last error is thrown). */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, policy: RetryPolicy, hooks: RetryHooks = {}): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= policy.maxAttempts || !isRetryable(err) || hooks.signal?.aborted) throw err;
      const delayMs = backoffDelay(attempt, policy, err);
      hooks.onRetry?.({ attempt, delayMs, error: err });
      await sleep(delayMs, undefined, { signal: hooks.signal });
    }
  }
}

export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
