/*
 * Native receive: a blob GET, over TLS or plain HTTP, whose body goes socket → (OpenSSL →) file +
 * hash on the libuv thread pool, never as JavaScript chunks. OpenSSL is the one inside the node
 * binary (3.0.x, its SSL_* / X509_* / EVP_* symbols are exported), so TLS behaves as Node's.
 *
 * JavaScript keeps every decision (registry/transport/transport.ts builds a context per origin from
 * the same decisions as its undici pool): it resolves the address, builds the trust
 * (tls.rootCertificates + NODE_EXTRA_CA_CERTS + certs.d / config CAs), picks the client
 * certificate and whether to verify, writes the request head, parses the response head, follows
 * redirects, resumes with Range and counts Content-Length. C does the connect, the handshake
 * (verification on unless JS says rejectUnauthorized:false; the peer's name always checked when
 * verifying), and the bulk receive in slices so JS sees progress and can stop between slices.
 *
 *   tlsLoadRoots(pems) → Promise<count>   (once: Node's roots, parsed on the pool, shared by contexts;
 *                                          a context may be made while they load)
 *   tlsContext({ca: string[], roots?, cert?, key?, rejectUnauthorized} | {plain: true}) → ctx   (one per origin)
 *   tlsRequest(ctx, {address, port, host, head: Buffer, connectTimeoutMs, timeoutMs, conn?})
 *       → Promise<{conn, head: Buffer, alpn: string, protocol}>   (conn: a kept-alive connection to reuse)
 *   tlsReceive(conn, digestHandle, maxBytes) → Promise<bytes> (what is ready, ≥ 1; 0: the peer closed)
 *   tlsRead(conn, maxBytes) → Promise<Buffer>   (bodies JavaScript reads itself)
 *   tlsAbort(conn)   (shuts the socket down: a waiting job rejects with an AbortError)
 *   tlsClose(conn)
 *
 * A pool thread waits (poll) on the socket while a job runs, so a stalled peer holds a pool thread
 * for up to timeoutMs; a job is one slice (4 MiB), and the transfers are at most --concurrency.
 */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * One write + hash per this many plaintext bytes. Small enough to stay in a core's L2 cache
 * between the recv (or decrypt), the write into the page cache and the hash: at 1 MiB every pass
 * read from L3/memory, and the kernel's copy into the page cache alone cost +0.13 s of system time
 * on bench:unpack (perf: copy_folio_from_iter_atomic 1,772 against 1,237 samples).
 */
#define RECV_BUF ((size_t)256 << 10)
#define HEAD_MAX ((size_t)64 << 10)

/* Type tags: an external of another kind (a digest handle) is never taken for one of ours. */
static const napi_type_tag CTX_TAG = {0x7374726174756d31ULL, 0x746c732d63747831ULL};
static const napi_type_tag CONN_TAG = {0x7374726174756d31ULL, 0x746c732d636f6e6eULL};

typedef struct {
  SSL_CTX *ctx; /* NULL for a plain-HTTP context */
  int verify;
} tls_ctx;

typedef struct {
  char code[64];     /* Node's name: CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID, ERR_SSL_..., ECONNREFUSED */
  char message[512];
  char reason[256];
  int err;           /* errno for network failures */
  const char *syscall;
  char valid_from[40], valid_to[40]; /* the failing certificate's dates, when verification failed */
  int stale; /* a kept-alive connection failed before any byte of the answer: retry on a new one */
} tls_err;

typedef struct {
  SSL *ssl;
  int fd;
  int busy;
  int aborted; /* tlsAbort was called: set on the main thread, read by the pool job (atomics) */
  int timeout_ms;
  unsigned char *buf; /* RECV_BUF bytes */
  size_t pend_off, pend_len; /* body bytes read with the head, not handed out yet */
  char host[256];
  int verify;
  /* the verifier's findings (verify_cb): a chain error as Node reports it, a name mismatch */
  int refused;
  long verr, name_mismatch;
  char vfrom[40], vto[40];
} tls_conn;

static int conn_index = -1; /* SSL ex_data slot → tls_conn */

/* ---- errors ---- */

static void fail_errno(tls_err *e, int err, const char *syscall, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail_errno(tls_err *e, int err, const char *syscall, const char *fmt, ...) {
  e->err = err;
  e->syscall = syscall;
  snprintf(e->code, sizeof e->code, "%s", err == ETIMEDOUT ? "ETIMEDOUT" : strerrorname_np(err) ? strerrorname_np(err) : "EIO");
  char what[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(e->message, sizeof e->message, "%s: %s %s", what, syscall, strerror(err));
}

/* Node's names for X509_V_ERR_* (src/crypto/crypto_common.cc X509ErrorCode). */
static const char *verify_code(long v) {
  switch (v) {
#define C(x) \
  case X509_V_ERR_##x: return #x;
    C(UNABLE_TO_GET_ISSUER_CERT) C(UNABLE_TO_GET_CRL) C(UNABLE_TO_DECRYPT_CERT_SIGNATURE) C(UNABLE_TO_DECRYPT_CRL_SIGNATURE)
    C(UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY) C(CERT_SIGNATURE_FAILURE) C(CRL_SIGNATURE_FAILURE) C(CERT_NOT_YET_VALID) C(CERT_HAS_EXPIRED)
    C(CRL_NOT_YET_VALID) C(CRL_HAS_EXPIRED) C(ERROR_IN_CERT_NOT_BEFORE_FIELD) C(ERROR_IN_CERT_NOT_AFTER_FIELD)
    C(ERROR_IN_CRL_LAST_UPDATE_FIELD) C(ERROR_IN_CRL_NEXT_UPDATE_FIELD) C(OUT_OF_MEM) C(DEPTH_ZERO_SELF_SIGNED_CERT)
    C(SELF_SIGNED_CERT_IN_CHAIN) C(UNABLE_TO_GET_ISSUER_CERT_LOCALLY) C(UNABLE_TO_VERIFY_LEAF_SIGNATURE) C(CERT_CHAIN_TOO_LONG)
    C(CERT_REVOKED) C(INVALID_CA) C(PATH_LENGTH_EXCEEDED) C(INVALID_PURPOSE) C(CERT_UNTRUSTED) C(CERT_REJECTED)
#undef C
    default: return "UNSPECIFIED";
  }
}

/*
 * After a failed SSL_* call: a certificate the verifier refused (named as Node names it), else
 * OpenSSL's error as Node codes it (ERR_SSL_<REASON>, e.g. ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED).
 */
static void fail_ssl(tls_err *e, tls_conn *c, const char *what) {
  long v = !c->verify || !c->refused ? X509_V_OK : c->verr != X509_V_OK ? c->verr : c->name_mismatch;
  if (v != X509_V_OK) {
    ERR_clear_error();
    if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH || v == X509_V_ERR_EMAIL_MISMATCH) {
      snprintf(e->code, sizeof e->code, "ERR_TLS_CERT_ALTNAME_INVALID");
      snprintf(e->reason, sizeof e->reason, "%s %s is not in the cert's altnames", v == X509_V_ERR_IP_ADDRESS_MISMATCH ? "IP:" : "Host:", c->host);
      snprintf(e->message, sizeof e->message, "Hostname/IP does not match certificate's altnames: %s", e->reason);
    } else {
      snprintf(e->code, sizeof e->code, "%s", verify_code(v));
      snprintf(e->message, sizeof e->message, "%s", X509_verify_cert_error_string(v));
      snprintf(e->valid_from, sizeof e->valid_from, "%s", c->vfrom);
      snprintf(e->valid_to, sizeof e->valid_to, "%s", c->vto);
    }
    return;
  }
  unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  const char *lib = ERR_lib_error_string(code), *reason = ERR_reason_error_string(code);
  if (!code || !reason) {
    snprintf(e->code, sizeof e->code, "ECONNRESET");
    snprintf(e->message, sizeof e->message, "%s: the connection closed", what);
    return;
  }
  /* Node: "ERR_" + library + "_" + reason, upper case, spaces to underscores ("SSL routines" → SSL). */
  char name[64];
  snprintf(name, sizeof name, "ERR_%s_%s", lib && strcmp(lib, "SSL routines") ? lib : "SSL", reason);
  for (char *p = name; *p; p++) *p = *p == ' ' ? '_' : (*p >= 'a' && *p <= 'z') ? (char)(*p - 32) : *p;
  snprintf(e->code, sizeof e->code, "%s", name);
  snprintf(e->message, sizeof e->message, "%s: %s", what, reason);
}

static napi_value error_value(napi_env env, const tls_err *e) {
  napi_value code, msg, err, v;
  napi_create_string_utf8(env, e->code, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, e->message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &err);
  if (e->reason[0]) {
    napi_create_string_utf8(env, e->reason, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, err, "reason", v);
  }
  if (e->err) {
    napi_create_int32(env, -e->err, &v); /* negative, as libuv's errno on Node's socket errors */
    napi_set_named_property(env, err, "errno", v);
  }
  if (e->syscall) {
    napi_create_string_utf8(env, e->syscall, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, err, "syscall", v);
  }
  if (e->stale) {
    napi_get_boolean(env, true, &v);
    napi_set_named_property(env, err, "stale", v);
  }
  if (e->valid_from[0]) {
    napi_value cert;
    napi_create_object(env, &cert);
    napi_create_string_utf8(env, e->valid_from, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, cert, "valid_from", v);
    napi_create_string_utf8(env, e->valid_to, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, cert, "valid_to", v);
    napi_set_named_property(env, err, "cert", cert);
  }
  return err;
}

/* The rejection of a job whose connection tlsAbort shut down: an AbortError, as fetch's. */
static napi_value abort_value(napi_env env) {
  napi_value code, msg, err, name;
  napi_create_string_utf8(env, "ABORT_ERR", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, "This operation was aborted", NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &err);
  napi_create_string_utf8(env, "AbortError", NAPI_AUTO_LENGTH, &name);
  napi_set_named_property(env, err, "name", name);
  return err;
}

/* ---- context: trust, client certificate, verification ---- */

static void asn1_text(const ASN1_TIME *t, char *out, size_t size) {
  out[0] = '\0';
  BIO *b = BIO_new(BIO_s_mem());
  if (!b) return;
  if (t && ASN1_TIME_print(b, t) == 1) {
    int n = BIO_read(b, out, (int)size - 1);
    out[n > 0 ? n : 0] = '\0';
  }
  BIO_free(b);
}

/*
 * Node's semantics: the handshake completes whatever the verifier finds, and the verdict is taken
 * right after it, before a single byte is sent (check_verdict). This callback records the verdict
 * as Node would report it: the chain's last error (Node reads SSL_get_verify_result, which is the
 * last), and a name mismatch only when the chain itself is fine (Node checks the name after it).
 */
static int verify_cb(int ok, X509_STORE_CTX *store) {
  if (ok) return 1;
  SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
  tls_conn *c = ssl ? SSL_get_ex_data(ssl, conn_index) : NULL;
  if (!c) return 0; /* not ours: refuse */
  int err = X509_STORE_CTX_get_error(store);
  if (err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH || err == X509_V_ERR_EMAIL_MISMATCH) {
    c->name_mismatch = err;
  } else {
    c->verr = err;
    X509 *cert = X509_STORE_CTX_get_current_cert(store);
    c->vfrom[0] = c->vto[0] = '\0';
    if (cert) {
      asn1_text(X509_get0_notBefore(cert), c->vfrom, sizeof c->vfrom);
      asn1_text(X509_get0_notAfter(cert), c->vto, sizeof c->vto);
    }
  }
  c->refused = 1;
  return 1;
}

/*
 * After a completed handshake: 0 when the peer may be spoken to, -1 with e set when verification
 * is on and anything failed. Also refuses when OpenSSL's own result disagrees with what the
 * callback saw (belt and braces: the callback is not the only place that can fail a chain).
 */
static int check_verdict(tls_conn *c, tls_err *e) {
  if (!c->verify) return 0;
  long result = SSL_get_verify_result(c->ssl);
  if (!c->refused && result == X509_V_OK && SSL_get0_peer_certificate(c->ssl)) return 0;
  if (!c->refused) {
    c->refused = 1;
    c->verr = result != X509_V_OK ? result : X509_V_ERR_UNSPECIFIED;
  }
  fail_ssl(e, c, "TLS handshake");
  return -1;
}

static void ctx_finalize(napi_env env, void *data, void *hint) {
  tls_ctx *t = data;
  if (t->ctx) SSL_CTX_free(t->ctx);
  free(t);
}

/* A property of o as a malloc'd string (NULL when absent/undefined; *bad set after throwing). */
static char *prop_string(napi_env env, napi_value o, const char *name, int *bad) {
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, o, name, &v) != napi_ok) return NULL;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) return NULL;
  char *s = st_get_string(env, v, name, NULL);
  if (!s) *bad = 1;
  return s;
}

static int64_t prop_int(napi_env env, napi_value o, const char *name, int64_t dflt) {
  napi_value v;
  int64_t n;
  if (napi_get_named_property(env, o, name, &v) != napi_ok || napi_get_value_int64(env, v, &n) != napi_ok) return dflt;
  return n;
}

static void throw_ssl(napi_env env, const char *what) {
  char msg[512];
  unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  snprintf(msg, sizeof msg, "%s: %s", what, code ? ERR_reason_error_string(code) : "OpenSSL error");
  napi_throw_error(env, "ERR_INVALID_ARGUMENT", msg);
}

/* Adds every certificate of a PEM text to the store; the count, -1 on a PEM error. */
static int add_pems(X509_STORE *store, const char *pem, size_t len) {
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  if (!b) return -1;
  int n = 0;
  X509 *x;
  while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
    X509_STORE_add_cert(store, x); /* a duplicate is not an error in 3.0 */
    X509_free(x);
    n++;
  }
  unsigned long err = ERR_peek_last_error();
  if (n > 0 && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) ERR_clear_error(); /* the normal end of the text */
  BIO_free(b);
  return ERR_peek_error() ? -1 : n;
}

/*
 * The trust every context shares (Node's bundled roots and NODE_EXTRA_CA_CERTS): parsed once per
 * process, on a pool thread (tlsLoadRoots), since OpenSSL 3 takes ~0.1–0.2 ms per certificate and
 * there are ~150–300 of them (25–50 ms). Contexts add the parsed certificates by reference; a
 * context made while they are still being parsed gets them through a lookup (roots_lookup) that
 * waits for the parse only when a chain needs an issuer its own CAs do not hold: a registry whose
 * CA comes from certs.d is spoken to at once, and for a public one the wait overlaps the connect.
 * The parse is published by the pool thread itself (under roots_mu), so a handshake waiting in the
 * lookup on another pool thread never depends on the main thread.
 */
static STACK_OF(X509) *shared_roots;
static int shared_roots_state; /* 0 none (or failed), 1 loading, 2 loaded; written under roots_mu */
static pthread_mutex_t roots_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t roots_cv = PTHREAD_COND_INITIALIZER;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *pems;
  size_t len;
  STACK_OF(X509) *parsed;
  int bad;
} roots_work;

static void roots_execute(napi_env env, void *data) {
  roots_work *w = data;
  ERR_clear_error();
  w->parsed = sk_X509_new_null();
  BIO *b = BIO_new_mem_buf(w->pems, (int)w->len);
  X509 *x;
  /* What does not parse is skipped, as Node skips a bad NODE_EXTRA_CA_CERTS (with a warning it printed already). */
  while (b && w->parsed && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) sk_X509_push(w->parsed, x);
  if (!b || !w->parsed) w->bad = 1;
  ERR_clear_error();
  BIO_free(b);
  pthread_mutex_lock(&roots_mu);
  if (w->bad) {
    shared_roots_state = 0;
  } else {
    shared_roots = w->parsed;
    w->parsed = NULL;
    shared_roots_state = 2;
  }
  pthread_cond_broadcast(&roots_cv);
  pthread_mutex_unlock(&roots_mu);
}

static void roots_complete(napi_env env, napi_status status, void *data) {
  roots_work *w = data;
  if (w->parsed) sk_X509_pop_free(w->parsed, X509_free);
  if (status != napi_ok || w->bad) {
    if (status != napi_ok) {
      /* The job never ran (cancelled): nobody published; wake any waiter with nothing. */
      pthread_mutex_lock(&roots_mu);
      if (shared_roots_state == 1) shared_roots_state = 0;
      pthread_cond_broadcast(&roots_cv);
      pthread_mutex_unlock(&roots_mu);
    }
    napi_value err, code, msg;
    napi_create_string_utf8(env, "ERR_INVALID_ARGUMENT", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, "tlsLoadRoots: out of memory", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &err);
    napi_reject_deferred(env, w->deferred, err);
  } else {
    napi_value n;
    napi_create_int32(env, sk_X509_num(shared_roots), &n);
    napi_resolve_deferred(env, w->deferred, n);
  }
  napi_delete_async_work(env, w->work);
  free(w->pems);
  free(w);
}

/* The shared roots once parsed (waiting while they are), or NULL when their parse failed. */
static STACK_OF(X509) *roots_wait(void) {
  pthread_mutex_lock(&roots_mu);
  while (shared_roots_state == 1) pthread_cond_wait(&roots_cv, &roots_mu);
  STACK_OF(X509) *roots = shared_roots_state == 2 ? shared_roots : NULL;
  pthread_mutex_unlock(&roots_mu);
  return roots;
}

/*
 * The lookup of a store made while the roots were being parsed: asked for an issuer the store does
 * not hold, it adds every shared root to the store (once), then answers from the store, as
 * OpenSSL's by_dir lookup does with the files it loads.
 */
static int roots_lookup_by_subject(X509_LOOKUP *lu, X509_LOOKUP_TYPE type, const X509_NAME *name, X509_OBJECT *ret) {
  if (type != X509_LU_X509) return 0;
  STACK_OF(X509) *roots = roots_wait();
  X509_STORE *store = X509_LOOKUP_get_store(lu);
  if (!roots || !store) return 0;
  if (!__atomic_load_n((int *)X509_LOOKUP_get_method_data(lu), __ATOMIC_ACQUIRE)) {
    for (int i = 0; i < sk_X509_num(roots); i++) X509_STORE_add_cert(store, sk_X509_value(roots, i)); /* duplicates are ignored */
    ERR_clear_error();
    __atomic_store_n((int *)X509_LOOKUP_get_method_data(lu), 1, __ATOMIC_RELEASE);
  }
  if (!X509_STORE_lock(store)) return 0;
  X509_OBJECT *obj = X509_OBJECT_retrieve_by_subject(X509_STORE_get0_objects(store), type, name);
  X509 *x = obj ? X509_OBJECT_get0_X509(obj) : NULL;
  /* The caller takes its own reference: the one set1 adds stays on a root, which lives for the process. */
  int found = x && X509_OBJECT_set1_X509(ret, x) == 1;
  X509_STORE_unlock(store);
  return found;
}

static int roots_lookup_new(X509_LOOKUP *lu) {
  int *added = calloc(1, sizeof *added); /* whether this store holds the roots yet */
  return added && X509_LOOKUP_set_method_data(lu, added) == 1;
}

static void roots_lookup_free(X509_LOOKUP *lu) {
  free(X509_LOOKUP_get_method_data(lu));
}

static X509_LOOKUP_METHOD *roots_lookup_method(void) {
  static X509_LOOKUP_METHOD *m;
  if (!m) {
    m = X509_LOOKUP_meth_new("stratum shared roots");
    if (m) {
      X509_LOOKUP_meth_set_new_item(m, roots_lookup_new);
      X509_LOOKUP_meth_set_free(m, roots_lookup_free);
      X509_LOOKUP_meth_set_get_by_subject(m, roots_lookup_by_subject);
    }
  }
  return m;
}

/* tlsLoadRoots(pems: string) → Promise<count>: parses the shared roots once (JS calls it once). */
static napi_value tls_load_roots(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (st_args(env, info, 1, 1, argv, "tlsLoadRoots(pems)")) return NULL;
  pthread_mutex_lock(&roots_mu);
  int state = shared_roots_state;
  pthread_mutex_unlock(&roots_mu);
  if (state != 0) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", "tlsLoadRoots: the roots are loaded (or loading) already");
    return NULL;
  }
  roots_work *w = calloc(1, sizeof *w);
  w->pems = st_get_string(env, argv[0], "pems", &w->len);
  if (!w->pems) {
    free(w);
    return NULL;
  }
  pthread_mutex_lock(&roots_mu);
  shared_roots_state = 1;
  pthread_mutex_unlock(&roots_mu);
  return st_queue(env, "stratum.tlsLoadRoots", roots_execute, roots_complete, w, &w->deferred, &w->work);
}

/*
 * tlsContext({ca: string[], roots?: true, cert?, key?, rejectUnauthorized?} | {plain: true}) → ctx.
 * `roots`: trust the shared roots (tlsLoadRoots, resolved) besides `ca`. Verification is on unless
 * rejectUnauthorized === false.
 */
static napi_value tls_context(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (st_args(env, info, 1, 1, argv, "tlsContext({ca, cert?, key?, rejectUnauthorized?})")) return NULL;
  napi_value o = argv[0], v;
  bool plain = false;
  if (napi_get_named_property(env, o, "plain", &v) == napi_ok) napi_get_value_bool(env, v, &plain);
  if (plain) {
    /* Plain HTTP (an insecure registry): the same requests and receive, no TLS. */
    tls_ctx *t = calloc(1, sizeof *t);
    napi_value ext;
    napi_create_external(env, t, ctx_finalize, NULL, &ext);
    napi_type_tag_object(env, ext, &CTX_TAG);
    return ext;
  }
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    throw_ssl(env, "SSL_CTX_new");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION); /* Node's default minimum */
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
  /* Read ahead: one recv takes several records (fewer syscalls) */
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_read_buffer_len(ctx, 256 << 10);
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);

  /* Trust exactly the PEMs given (JS passes Node's roots + extras): no implicit system store. */
  X509_STORE *store = X509_STORE_new();
  SSL_CTX_set_cert_store(ctx, store);
  bool with_roots = false;
  if (napi_get_named_property(env, o, "roots", &v) == napi_ok) napi_get_value_bool(env, v, &with_roots);
  if (with_roots) {
    pthread_mutex_lock(&roots_mu);
    int state = shared_roots_state;
    pthread_mutex_unlock(&roots_mu);
    if (state == 2) {
      for (int i = 0; i < sk_X509_num(shared_roots); i++) X509_STORE_add_cert(store, sk_X509_value(shared_roots, i));
      ERR_clear_error(); /* duplicates */
    } else if (state != 1 || !roots_lookup_method() || !X509_STORE_add_lookup(store, roots_lookup_method())) {
      SSL_CTX_free(ctx);
      st_throw_msg(env, "ERR_INVALID_ARGUMENT", state != 1 ? "tlsContext: roots asked before tlsLoadRoots (or after it failed)" : "tlsContext: cannot add the roots' lookup");
      return NULL;
    }
  }
  bool is_arr = false;
  if (napi_get_named_property(env, o, "ca", &v) == napi_ok) napi_is_array(env, v, &is_arr);
  if (is_arr) {
    uint32_t n;
    napi_get_array_length(env, v, &n);
    for (uint32_t i = 0; i < n; i++) {
      napi_value el;
      napi_get_element(env, v, i, &el);
      size_t len;
      char *pem = st_get_string(env, el, "ca[i]", &len);
      if (!pem) {
        SSL_CTX_free(ctx);
        return NULL;
      }
      int r = add_pems(store, pem, len);
      free(pem);
      if (r <= 0) {
        SSL_CTX_free(ctx);
        if (r < 0) throw_ssl(env, "tlsContext: a CA certificate does not parse");
        else napi_throw_error(env, "ERR_INVALID_ARGUMENT", "tlsContext: a CA entry holds no certificate");
        return NULL;
      }
    }
  }

  int bad = 0;
  char *cert = prop_string(env, o, "cert", &bad), *key = prop_string(env, o, "key", &bad);
  if (bad || (!cert) != (!key)) {
    free(cert);
    free(key);
    SSL_CTX_free(ctx);
    if (!bad) napi_throw_error(env, "ERR_INVALID_ARGUMENT", "tlsContext: cert and key go together");
    return NULL;
  }
  if (cert) {
    /* The first certificate is the client's, the rest its chain; the key must match it. */
    BIO *cb = BIO_new_mem_buf(cert, -1), *kb = BIO_new_mem_buf(key, -1);
    X509 *leaf = PEM_read_bio_X509(cb, NULL, NULL, NULL);
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    int ok = leaf && pkey && SSL_CTX_use_certificate(ctx, leaf) == 1 && SSL_CTX_use_PrivateKey(ctx, pkey) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    X509 *extra;
    while (ok && (extra = PEM_read_bio_X509(cb, NULL, NULL, NULL))) {
      if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
        X509_free(extra);
        ok = 0;
      }
    }
    if (ok) ERR_clear_error();
    X509_free(leaf);
    EVP_PKEY_free(pkey);
    BIO_free(cb);
    BIO_free(kb);
    OPENSSL_cleanse(key, strlen(key));
    free(cert);
    free(key);
    if (!ok) {
      SSL_CTX_free(ctx);
      throw_ssl(env, "tlsContext: the client certificate or key does not load");
      return NULL;
    }
  }

  bool reject = true;
  if (napi_get_named_property(env, o, "rejectUnauthorized", &v) == napi_ok) {
    napi_valuetype t;
    napi_typeof(env, v, &t);
    if (t == napi_boolean) napi_get_value_bool(env, v, &reject);
  }
  SSL_CTX_set_verify(ctx, reject ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, reject ? verify_cb : NULL);

  tls_ctx *t = calloc(1, sizeof *t);
  t->ctx = ctx;
  t->verify = reject;
  napi_value ext;
  napi_create_external(env, t, ctx_finalize, NULL, &ext);
  napi_type_tag_object(env, ext, &CTX_TAG);
  return ext;
}

/* ---- connection ---- */

static void conn_close(tls_conn *c) {
  if (c->ssl) SSL_free(c->ssl);
  c->ssl = NULL;
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
}

static void conn_finalize(napi_env env, void *data, void *hint) {
  conn_close(data);
  free(data);
}

/* Why a job cannot start on the connection now (one runs, or it is closed); NULL when it can. */
static const char *conn_misuse(const tls_conn *c) {
  return c->busy ? "a call on this TLS connection is still running" : !c->buf ? "this connection is closed" : NULL;
}

static void *tagged(napi_env env, napi_value v, const napi_type_tag *tag, const char *what) {
  bool ok = false;
  void *data = NULL;
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_external) napi_check_object_type_tag(env, v, tag, &ok);
  if (!ok || napi_get_value_external(env, v, &data) != napi_ok || !data) {
    char msg[96];
    snprintf(msg, sizeof msg, "expected a %s", what);
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", msg);
    return NULL;
  }
  return data;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready for `events`; 0, or an errno (ETIMEDOUT after timeout_ms of silence). */
static int wait_fd(int fd, short events, int timeout_ms) {
  int64_t until = now_ms() + timeout_ms;
  for (;;) {
    int64_t left = until - now_ms();
    if (left <= 0) return ETIMEDOUT;
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, (int)left);
    if (r > 0) return 0;
    if (r == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

/* After SSL_* returned r <= 0: 1 when waiting made progress possible (call again), 0 at a clean end, -1 with e set. */
static int ssl_wait(tls_conn *c, int r, tls_err *e, const char *what) {
  int why = SSL_get_error(c->ssl, r);
  int err;
  switch (why) {
    case SSL_ERROR_WANT_READ:
      if ((err = wait_fd(c->fd, POLLIN, c->timeout_ms)) == 0) return 1;
      fail_errno(e, err, "read", "%s", what);
      return -1;
    case SSL_ERROR_WANT_WRITE:
      if ((err = wait_fd(c->fd, POLLOUT, c->timeout_ms)) == 0) return 1;
      fail_errno(e, err, "write", "%s", what);
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_SYSCALL:
      if (errno && !ERR_peek_error()) {
        fail_errno(e, errno, "read", "%s", what);
        return -1;
      }
      /* fallthrough */
    default:
      fail_ssl(e, c, what);
      return -1;
  }
}

/*
 * One read from the connection (TLS or plain): 1 with *n bytes, 0 at a clean end of stream, -1
 * with e set. While nothing is there it waits (poll, up to timeout_ms of silence), or with
 * `nowait` returns 2.
 */
static int conn_read_ex(tls_conn *c, void *buf, size_t len, size_t *n, tls_err *e, const char *what, int nowait) {
  for (;;) {
    if (c->ssl) {
      if (SSL_read_ex(c->ssl, buf, len, n) == 1) return 1;
      if (nowait && SSL_get_error(c->ssl, 0) == SSL_ERROR_WANT_READ) return 2;
      int s = ssl_wait(c, 0, e, what);
      if (s == 1) continue;
      return s;
    }
    ssize_t r = recv(c->fd, buf, len, 0);
    if (r > 0) {
      *n = (size_t)r;
      return 1;
    }
    if (r == 0) return 0;
    if (errno == EINTR) continue;
    int err = errno;
    if (nowait && (err == EAGAIN || err == EWOULDBLOCK)) return 2;
    if ((err == EAGAIN || err == EWOULDBLOCK) && (err = wait_fd(c->fd, POLLIN, c->timeout_ms)) == 0) continue;
    fail_errno(e, err, "read", "%s", what);
    return -1;
  }
}

static int conn_read(tls_conn *c, void *buf, size_t len, size_t *n, tls_err *e, const char *what) {
  return conn_read_ex(c, buf, len, n, e, what, 0);
}

/* Writes all of buf: 0, or -1 with e set. */
static int conn_write_all(tls_conn *c, const void *buf, size_t len, tls_err *e, const char *what) {
  size_t sent = 0;
  while (sent < len) {
    if (c->ssl) {
      size_t n = 0;
      if (SSL_write_ex(c->ssl, (const char *)buf + sent, len - sent, &n) == 1) {
        sent += n;
        continue;
      }
      if (ssl_wait(c, 0, e, what) != 1) {
        if (!e->code[0]) fail_errno(e, ECONNRESET, "write", "%s", what);
        return -1;
      }
      continue;
    }
    ssize_t r = send(c->fd, (const char *)buf + sent, len - sent, MSG_NOSIGNAL);
    if (r >= 0) {
      sent += (size_t)r;
      continue;
    }
    if (errno == EINTR) continue;
    int err = errno;
    if ((err == EAGAIN || err == EWOULDBLOCK) && (err = wait_fd(c->fd, POLLOUT, c->timeout_ms)) == 0) continue;
    fail_errno(e, err, "write", "%s", what);
    return -1;
  }
  return 0;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref ctx_ref, conn_ref, digest_ref;
  tls_conn *c;
  digest_handle *dh;
  SSL_CTX *ssl_ctx; /* the context's (held by ctx_ref while the job runs); NULL: plain */
  int reuse;        /* a kept-alive connection: no connect or handshake unless it went stale */
  /* request */
  char address[INET6_ADDRSTRLEN + 1];
  int port, connect_timeout_ms;
  unsigned char *head;
  size_t head_len;
  /* results */
  unsigned char *resp;
  size_t resp_len;
  size_t max, total;
  int write_err;
  int failed;
  tls_err e;
} tls_work;

/* A fresh SSL object for the connection's host: name checks when verifying, SNI for a name. 0, or -1. */
static int conn_new_ssl(tls_conn *c, SSL_CTX *ctx) {
  c->ssl = SSL_new(ctx);
  if (!c->ssl) return -1;
  SSL_set_ex_data(c->ssl, conn_index, c);
  c->refused = 0;
  c->verr = X509_V_OK;
  c->name_mismatch = 0;
  /* The name checked is the URL's host: an IP literal against IP SANs (and no SNI, as Node), a name against DNS SANs (and SNI). */
  unsigned char ipbuf[16];
  int is_ip = inet_pton(AF_INET, c->host, ipbuf) == 1 || inet_pton(AF_INET6, c->host, ipbuf) == 1;
  int ok = 1;
  if (c->verify) ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), c->host) == 1 : SSL_set1_host(c->ssl, c->host) == 1;
  if (ok && !is_ip) ok = SSL_set_tlsext_host_name(c->ssl, c->host) == 1;
  return ok ? 0 : -1;
}

/*
 * Whether a kept-alive connection can carry another request: nothing may be waiting on it (a
 * peer's close, its close_notify or stray bytes all mean it is done).
 */
static int conn_idle_usable(tls_conn *c) {
  if (c->fd < 0 || (c->ssl && SSL_pending(c->ssl) > 0)) return 0;
  struct pollfd p = {.fd = c->fd, .events = POLLIN};
  return poll(&p, 1, 0) == 0;
}

/* Connect (and handshake): 0, or -1 with w->e set. */
static int request_connect(tls_work *w) {
  tls_conn *c = w->c;
  char what[INET6_ADDRSTRLEN + 48];
  snprintf(what, sizeof what, strchr(w->address, ':') ? "connect [%s]:%d" : "connect %s:%d", w->address, w->port);
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  char service[16];
  snprintf(service, sizeof service, "%d", w->port);
  if (getaddrinfo(w->address, service, &hints, &ai) != 0) {
    fail_errno(&w->e, EINVAL, "getaddrinfo", "%s: not a numeric address", what);
    w->failed = 1;
    return -1;
  }
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  __atomic_store_n(&c->fd, fd, __ATOMIC_SEQ_CST);
  int err = fd < 0 ? errno : 0;
  if (!err && __atomic_load_n(&c->aborted, __ATOMIC_SEQ_CST)) err = ECANCELED; /* aborted before the socket existed */
  if (!err && connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    err = errno == EINPROGRESS ? wait_fd(c->fd, POLLOUT, w->connect_timeout_ms) : errno;
    if (!err) {
      socklen_t len = sizeof err;
      if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    }
  }
  freeaddrinfo(ai);
  if (err) {
    fail_errno(&w->e, err, "connect", "%s", what);
    w->failed = 1;
    return -1;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (c->ssl) {
    SSL_set_fd(c->ssl, c->fd);
    int r;
    while ((r = SSL_connect(c->ssl)) != 1) {
      if (ssl_wait(c, r, &w->e, "TLS handshake") != 1) {
        if (!w->e.code[0]) fail_ssl(&w->e, c, "TLS handshake");
        w->failed = 1;
        return -1;
      }
    }
    if (check_verdict(c, &w->e) != 0) {
      w->failed = 1;
      return -1;
    }
  }
  return 0;
}

static void request_execute(napi_env env, void *data) {
  st_pool_thread_setup();
  tls_work *w = data;
  tls_conn *c = w->c;
  ERR_clear_error(); /* OpenSSL's error queue is per thread: start this job's with nothing in it */
  if (w->reuse && !conn_idle_usable(c)) {
    /* The peer closed it while it was idle: a new connection to the same address. */
    if (c->ssl) SSL_free(c->ssl);
    c->ssl = NULL;
    int fd = __atomic_exchange_n(&c->fd, -1, __ATOMIC_SEQ_CST);
    if (fd >= 0) close(fd);
    w->reuse = 0;
    if (w->ssl_ctx && conn_new_ssl(c, w->ssl_ctx) != 0) {
      fail_ssl(&w->e, c, "TLS setup");
      w->failed = 1;
      return;
    }
  }
  if (!w->reuse && request_connect(w) != 0) return;
  if (conn_write_all(c, w->head, w->head_len, &w->e, "send the request") != 0) {
    w->e.stale = w->reuse;
    w->failed = 1;
    return;
  }
  /* Read until the end of the head; body bytes that came with it stay in c->buf. */
  size_t fill = 0;
  for (;;) {
    size_t n = 0;
    int s = conn_read(c, c->buf + fill, HEAD_MAX - fill, &n, &w->e, "read the response head");
    if (s == 1) {
      size_t from = fill > 3 ? fill - 3 : 0;
      fill += n;
      unsigned char *end = memmem(c->buf + from, fill - from, "\r\n\r\n", 4);
      if (end) {
        w->resp_len = (size_t)(end - c->buf) + 4;
        w->resp = malloc(w->resp_len);
        memcpy(w->resp, c->buf, w->resp_len);
        c->pend_off = w->resp_len;
        c->pend_len = fill - w->resp_len;
        return;
      }
      if (fill == HEAD_MAX) {
        snprintf(w->e.code, sizeof w->e.code, "ERR_HTTP_HEAD_TOO_LARGE");
        snprintf(w->e.message, sizeof w->e.message, "the response head is over %zu bytes", HEAD_MAX);
        w->failed = 1;
        return;
      }
      continue;
    }
    if (s == 0) fail_errno(&w->e, ECONNRESET, "read", "the server closed the connection before the response head");
    w->e.stale = w->reuse && fill == 0;
    w->failed = 1;
    return;
  }
}

static void request_complete(napi_env env, napi_status status, void *data) {
  tls_work *w = data;
  w->c->busy = 0;
  if (status != napi_ok && !w->failed) {
    w->failed = 1;
    fail_errno(&w->e, ECANCELED, "connect", "tlsRequest");
  }
  if (w->failed || w->c->aborted) {
    conn_close(w->c);
    napi_reject_deferred(env, w->deferred, w->c->aborted ? abort_value(env) : error_value(env, &w->e));
  } else {
    napi_value res, conn, head, alpn;
    napi_create_object(env, &res);
    napi_get_reference_value(env, w->conn_ref, &conn);
    napi_set_named_property(env, res, "conn", conn);
    void *copy;
    napi_create_buffer_copy(env, w->resp_len, w->resp, &copy, &head);
    napi_set_named_property(env, res, "head", head);
    const unsigned char *proto = NULL;
    unsigned int plen = 0;
    if (w->c->ssl) SSL_get0_alpn_selected(w->c->ssl, &proto, &plen);
    napi_create_string_latin1(env, proto ? (const char *)proto : "", plen, &alpn);
    napi_set_named_property(env, res, "alpn", alpn);
    napi_value ver;
    napi_create_string_utf8(env, w->c->ssl ? SSL_get_version(w->c->ssl) : "plain", NAPI_AUTO_LENGTH, &ver);
    napi_set_named_property(env, res, "protocol", ver);
    napi_resolve_deferred(env, w->deferred, res);
  }
  napi_delete_reference(env, w->ctx_ref);
  napi_delete_reference(env, w->conn_ref);
  napi_delete_async_work(env, w->work);
  free(w->head);
  free(w->resp);
  free(w);
}

/*
 * tlsRequest(ctx, {address, port, host, head, connectTimeoutMs?, timeoutMs?, conn?}) → Promise<{conn, head, alpn, protocol}>.
 * `conn`: a kept-alive connection of this context whose last body was read to its end; it carries
 * the request unless the peer closed it meanwhile (then a new connection to `address` does). A
 * failure on it before any byte of the answer has `stale: true` (the caller may retry anew).
 */
static napi_value tls_request(napi_env env, napi_callback_info info) {
  static const char usage[] = "tlsRequest(ctx, {address, port, host, head: Buffer, connectTimeoutMs?, timeoutMs?, conn?})";
  napi_value argv[2];
  if (st_args(env, info, 2, 2, argv, usage)) return NULL;
  tls_ctx *t = tagged(env, argv[0], &CTX_TAG, "TLS context");
  if (!t) return NULL;
  napi_value o = argv[1], v, reused = NULL;
  tls_conn *old = NULL;
  napi_valuetype vt = napi_undefined;
  if (napi_get_named_property(env, o, "conn", &reused) == napi_ok) napi_typeof(env, reused, &vt);
  if (vt != napi_undefined && vt != napi_null) {
    if (!(old = tagged(env, reused, &CONN_TAG, "TLS connection"))) return NULL;
    const char *misuse = conn_misuse(old);
    if (!misuse && old->pend_len > 0) misuse = "this connection has body bytes not read yet";
    if (!misuse && (old->ssl != NULL) != (t->ctx != NULL)) misuse = "this connection is of another context";
    if (misuse) {
      st_throw_msg(env, "ERR_INVALID_ARGUMENT", misuse);
      return NULL;
    }
  }
  int bad = 0;
  char *address = prop_string(env, o, "address", &bad), *host = prop_string(env, o, "host", &bad);
  int64_t port = prop_int(env, o, "port", 0);
  bool is_buf = false;
  if (napi_get_named_property(env, o, "head", &v) == napi_ok) napi_is_buffer(env, v, &is_buf);
  if (bad || !address || !host || strlen(address) > INET6_ADDRSTRLEN || strlen(host) >= 256 || !host[0] || port <= 0 || port > 65535 || !is_buf ||
      (old && strcmp(old->host, host) != 0)) {
    free(address);
    free(host);
    if (!bad) st_throw_msg(env, "ERR_INVALID_ARGUMENT", old ? "tlsRequest: conn was made for another host" : usage);
    return NULL;
  }
  tls_work *w = calloc(1, sizeof *w);
  tls_conn *c = old ? old : calloc(1, sizeof *c);
  if (!old) {
    c->fd = -1;
    c->buf = malloc(RECV_BUF);
    snprintf(c->host, sizeof c->host, "%s", host);
    c->verify = t->verify;
  }
  c->timeout_ms = (int)prop_int(env, o, "timeoutMs", 30000);
  snprintf(w->address, sizeof w->address, "%s", address);
  w->port = (int)port;
  w->connect_timeout_ms = (int)prop_int(env, o, "connectTimeoutMs", 30000);
  w->ssl_ctx = t->ctx;
  w->reuse = old != NULL;
  void *hd;
  napi_get_buffer_info(env, v, &hd, &w->head_len);
  w->head = malloc(w->head_len ? w->head_len : 1);
  memcpy(w->head, hd, w->head_len);
  free(address);
  free(host);

  if (!old && t->ctx && conn_new_ssl(c, t->ctx) != 0) {
    conn_close(c);
    free(c);
    free(w->head);
    free(w);
    throw_ssl(env, "tlsRequest: the host name is not usable");
    return NULL;
  }
  napi_value conn = reused;
  if (!old) {
    napi_create_external(env, c, conn_finalize, NULL, &conn);
    napi_type_tag_object(env, conn, &CONN_TAG);
  }
  w->c = c;
  c->busy = 1;
  napi_create_reference(env, argv[0], 1, &w->ctx_ref);
  napi_create_reference(env, conn, 1, &w->conn_ref);
  napi_value promise = st_queue(env, "stratum.tlsRequest", request_execute, request_complete, w, &w->deferred, &w->work);
  /* The connection rides on the promise, so a caller can tlsAbort a connect or a wait for the head. */
  if (promise) napi_set_named_property(env, promise, "conn", conn);
  return promise;
}

/* ---- body ---- */

static void receive_execute(napi_env env, void *data) {
  st_pool_thread_setup();
  tls_work *w = data;
  tls_conn *c = w->c;
  ERR_clear_error();
  int eof = 0;
  while (w->total < w->max && !eof) {
    size_t want = w->max - w->total < RECV_BUF ? w->max - w->total : RECV_BUF;
    size_t fill = 0;
    if (c->pend_len > 0) {
      fill = c->pend_len < want ? c->pend_len : want;
      memmove(c->buf, c->buf + c->pend_off, fill);
      c->pend_off += fill;
      c->pend_len -= fill;
    }
    int idle = 0;
    while (fill < want) {
      size_t n = 0;
      /* Wait for bytes only when this job has none yet: otherwise write what came and return, so
       * the caller sees progress (a reader of the growing file) while the peer is slow. */
      int s = conn_read_ex(c, c->buf + fill, want - fill, &n, &w->e, "receive the body", fill > 0 || w->total > 0);
      if (s == 1) {
        fill += n;
        continue;
      }
      if (s == 2) {
        idle = 1;
        break;
      }
      if (s < 0) w->failed = 1;
      eof = 1;
      break;
    }
    if (fill > 0) {
      if ((w->write_err = st_digest_append(w->dh, c->buf, fill)) != 0) return;
      w->total += fill;
    }
    if (w->failed || idle) return;
  }
}

static void receive_complete(napi_env env, napi_status status, void *data) {
  tls_work *w = data;
  w->c->busy = 0;
  st_digest_release(w->dh);
  if (status != napi_ok && !w->failed && !w->write_err) {
    w->failed = 1;
    fail_errno(&w->e, ECANCELED, "read", "tlsReceive");
  }
  napi_value bytes;
  napi_create_double(env, (double)w->total, &bytes);
  if (w->write_err || w->failed || w->c->aborted) {
    napi_value err;
    if (w->c->aborted && !w->write_err) {
      err = abort_value(env);
    } else if (w->write_err) {
      st_error se;
      st_fail(&se, ST_APPLY, w->write_err, "writev", "", "cannot write received bytes of a digested stream");
      err = st_error_value(env, &se);
    } else {
      err = error_value(env, &w->e);
    }
    /* What landed before the failure is written and hashed alike: the caller counts it. */
    napi_set_named_property(env, err, "bytes", bytes);
    napi_reject_deferred(env, w->deferred, err);
  } else {
    napi_resolve_deferred(env, w->deferred, bytes);
  }
  napi_delete_reference(env, w->conn_ref);
  napi_delete_reference(env, w->digest_ref);
  napi_delete_async_work(env, w->work);
  free(w);
}

/*
 * tlsReceive(conn, digestHandle, maxBytes) → Promise<bytes written and hashed>: waits for the first
 * bytes, then takes what keeps arriving up to maxBytes and returns when the socket runs dry; 0 only
 * at the end of the stream.
 */
static napi_value tls_receive(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (st_args(env, info, 3, 3, argv, "tlsReceive(conn, digestHandle, maxBytes)")) return NULL;
  tls_conn *c = tagged(env, argv[0], &CONN_TAG, "TLS connection");
  if (!c) return NULL;
  digest_handle *dh = st_digest_get(env, argv[1]);
  if (!dh) return NULL;
  int64_t max;
  if (napi_get_value_int64(env, argv[2], &max) != napi_ok || max <= 0) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", "tlsReceive: maxBytes must be positive");
    return NULL;
  }
  const char *misuse = conn_misuse(c);
  if (misuse || (misuse = st_digest_claim(dh))) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", misuse);
    return NULL;
  }
  tls_work *w = calloc(1, sizeof *w);
  w->c = c;
  w->dh = dh;
  w->max = (size_t)max;
  c->busy = 1;
  napi_create_reference(env, argv[0], 1, &w->conn_ref);
  napi_create_reference(env, argv[1], 1, &w->digest_ref);
  return st_queue(env, "stratum.tlsReceive", receive_execute, receive_complete, w, &w->deferred, &w->work);
}

static void read_execute(napi_env env, void *data) {
  st_pool_thread_setup();
  tls_work *w = data;
  tls_conn *c = w->c;
  ERR_clear_error();
  w->resp = malloc(w->max);
  if (c->pend_len > 0) {
    size_t n = c->pend_len < w->max ? c->pend_len : w->max;
    memcpy(w->resp, c->buf + c->pend_off, n);
    c->pend_off += n;
    c->pend_len -= n;
    w->resp_len = n;
    return;
  }
  size_t n = 0;
  int s = conn_read(c, w->resp, w->max, &n, &w->e, "receive the body");
  if (s == 1) w->resp_len = n;
  if (s < 0) w->failed = 1; /* 0: end of stream, an empty Buffer */
}

static void read_complete(napi_env env, napi_status status, void *data) {
  tls_work *w = data;
  w->c->busy = 0;
  if (status != napi_ok && !w->failed) {
    w->failed = 1;
    fail_errno(&w->e, ECANCELED, "read", "tlsRead");
  }
  if (w->failed || w->c->aborted) {
    napi_reject_deferred(env, w->deferred, w->c->aborted ? abort_value(env) : error_value(env, &w->e));
  } else {
    napi_value buf;
    void *copy;
    napi_create_buffer_copy(env, w->resp_len, w->resp_len ? (const void *)w->resp : (const void *)"", &copy, &buf);
    napi_resolve_deferred(env, w->deferred, buf);
  }
  napi_delete_reference(env, w->conn_ref);
  napi_delete_async_work(env, w->work);
  free(w->resp);
  free(w);
}

/* tlsRead(conn, maxBytes) → Promise<Buffer> with what arrived (empty at end of stream): bodies JS reads itself. */
static napi_value tls_read(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (st_args(env, info, 2, 2, argv, "tlsRead(conn, maxBytes)")) return NULL;
  tls_conn *c = tagged(env, argv[0], &CONN_TAG, "TLS connection");
  if (!c) return NULL;
  int64_t max;
  if (napi_get_value_int64(env, argv[1], &max) != napi_ok || max <= 0 || max > (64 << 20)) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", "tlsRead: maxBytes must be 1..64 MiB");
    return NULL;
  }
  const char *misuse = conn_misuse(c);
  if (misuse) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", misuse);
    return NULL;
  }
  tls_work *w = calloc(1, sizeof *w);
  w->c = c;
  w->max = (size_t)max;
  c->busy = 1;
  napi_create_reference(env, argv[0], 1, &w->conn_ref);
  return st_queue(env, "stratum.tlsRead", read_execute, read_complete, w, &w->deferred, &w->work);
}

/* tlsClose(conn): drops the connection (no close_notify: the body was counted by Content-Length). */
static napi_value tls_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (st_args(env, info, 1, 1, argv, "tlsClose(conn)")) return NULL;
  tls_conn *c = tagged(env, argv[0], &CONN_TAG, "TLS connection");
  if (!c) return NULL;
  if (c->busy) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", "a call on this TLS connection is still running: await it first");
    return NULL;
  }
  conn_close(c);
  return NULL;
}

/*
 * tlsAbort(conn): stops what runs on the connection: its socket is shut down (safe from another
 * thread, unlike close), so a job waiting in poll wakes and its promise rejects with an AbortError.
 * The connection is closed by tlsClose once the job has returned.
 */
static napi_value tls_abort(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (st_args(env, info, 1, 1, argv, "tlsAbort(conn)")) return NULL;
  tls_conn *c = tagged(env, argv[0], &CONN_TAG, "TLS connection");
  if (!c) return NULL;
  if (!c->buf) return NULL; /* closed */
  __atomic_store_n(&c->aborted, 1, __ATOMIC_SEQ_CST);
  int fd = __atomic_load_n(&c->fd, __ATOMIC_SEQ_CST);
  if (fd >= 0) shutdown(fd, SHUT_RDWR);
  return NULL;
}

napi_status st_init_tls(napi_env env, napi_value exports) {
  if (conn_index < 0) conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  napi_status s;
  if ((s = st_export(env, exports, "tlsLoadRoots", tls_load_roots)) != napi_ok) return s;
  if ((s = st_export(env, exports, "tlsContext", tls_context)) != napi_ok) return s;
  if ((s = st_export(env, exports, "tlsRequest", tls_request)) != napi_ok) return s;
  if ((s = st_export(env, exports, "tlsReceive", tls_receive)) != napi_ok) return s;
  if ((s = st_export(env, exports, "tlsRead", tls_read)) != napi_ok) return s;
  if ((s = st_export(env, exports, "tlsAbort", tls_abort)) != napi_ok) return s;
  return st_export(env, exports, "tlsClose", tls_close);
}
