/*
 * DigestWriter: writev + EVP_DigestUpdate of a batch of Buffers, both on the libuv threadpool,
 * so a blob download spends no main-thread time hashing or copying to the page cache. OpenSSL's
 * EVP symbols come from the node binary itself.
 *
 * With drop-behind, the written bytes leave the page cache as the stream goes: every full window
 * is handed to writeback at once (sync_file_range WRITE), and the window before it, written back
 * by then, is dropped (POSIX_FADV_DONTNEED). A blob the caller will not read back soon then costs
 * a bounded amount of page cache instead of its whole size, the pages are recycled while they are
 * hot, and the final fsync finds almost everything already on disk.
 */
#include "common.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#define DROP_WINDOW ((off_t)8 << 20)

struct digest_handle {
  EVP_MD_CTX *ctx;
  int fd;
  int busy;     /* a write/update is on the threadpool */
  int finished; /* digest() was called */
  int poisoned; /* a write failed: the bytes on disk and the hash may disagree */
  int drop_behind;
  char *name;       /* what errors call the file (its path); NULL: "fd N" */
  off_t flushing;   /* writeback was started for [.., flushing) */
  off_t dropped;    /* [.., dropped) was written back and dropped from the page cache */
};

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref handle_ref;
  napi_ref buffers_ref;
  digest_handle *h;
  struct iovec *iov;  /* consumed by writev */
  struct iovec *hash; /* the same chunks, for hashing */
  int n;
  int do_write;
  int err;
  size_t total;
} digest_work;

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  digest_handle *h = data;
  EVP_MD_CTX_free(h->ctx);
  free(h->name);
  free(h);
}

/* Tagged so that another module's external (a TLS connection) is never taken for a digest handle. */
static const napi_type_tag DIGEST_TAG = {0x7374726174756d31ULL, 0x6469676573742d31ULL};

static digest_handle *get_handle(napi_env env, napi_value v) {
  void *data = NULL;
  bool tagged = false;
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_external) napi_check_object_type_tag(env, v, &DIGEST_TAG, &tagged);
  if (!tagged || napi_get_value_external(env, v, &data) != napi_ok || !data) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", "expected a digest writer handle");
    return NULL;
  }
  return data;
}

/*
 * Advisory only: an error here changes no byte and the final fsync reports any write error, so
 * none is raised. Windows are aligned to the file, so a resumed ingest continues the same grid.
 */
static void drop_behind(digest_handle *h) {
  off_t end = lseek(h->fd, 0, SEEK_CUR);
  if (end < 0) return;
  while (end - h->flushing >= DROP_WINDOW) {
    sync_file_range(h->fd, h->flushing, DROP_WINDOW, SYNC_FILE_RANGE_WRITE);
    h->flushing += DROP_WINDOW;
  }
  /* One window stays in flight so the wait below rarely waits. */
  while (h->flushing - h->dropped >= 2 * DROP_WINDOW) {
    sync_file_range(h->fd, h->dropped, DROP_WINDOW, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    posix_fadvise(h->fd, h->dropped, DROP_WINDOW, POSIX_FADV_DONTNEED);
    h->dropped += DROP_WINDOW;
  }
}

/* digestCreate(fd, algorithm, dropBehind?, name?) → handle; fd -1 for a hash-only handle. */
static napi_value digest_create(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (st_args(env, info, 2, 4, argv, "digestCreate(fd, algorithm, dropBehind?, name?)")) return NULL;
  int32_t fd = -1;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", "digestCreate(fd, algorithm)");
    return NULL;
  }
  char *alg = st_get_string(env, argv[1], "algorithm", NULL);
  if (!alg) return NULL;
  const EVP_MD *md = strcmp(alg, "sha256") == 0 ? EVP_sha256() : strcmp(alg, "sha512") == 0 ? EVP_sha512() : NULL;
  if (!md) {
    char msg[160];
    snprintf(msg, sizeof msg, "unsupported digest algorithm \"%.100s\" (sha256 or sha512)", alg);
    free(alg);
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", msg);
    return NULL;
  }
  free(alg);
  char *name = NULL;
  napi_valuetype name_type = napi_undefined;
  napi_typeof(env, argv[3], &name_type);
  if (name_type == napi_string && !(name = st_get_string(env, argv[3], "file name", NULL))) return NULL;
  digest_handle *h = calloc(1, sizeof *h);
  h->name = name;
  h->ctx = EVP_MD_CTX_new();
  if (!h->ctx || EVP_DigestInit_ex(h->ctx, md, NULL) != 1) {
    EVP_MD_CTX_free(h->ctx);
    free(h->name);
    free(h);
    napi_throw_error(env, "ERR_APPLY", "cannot initialise the OpenSSL digest");
    return NULL;
  }
  h->fd = fd;
  bool drop = false;
  napi_get_value_bool(env, argv[2], &drop); /* undefined: false */
  h->drop_behind = drop && fd >= 0;
  napi_value ext;
  napi_create_external(env, h, finalize_handle, NULL, &ext);
  napi_type_tag_object(env, ext, &DIGEST_TAG);
  return ext;
}

/* writev of all of iov (IOV_MAX at a time, short writes finished; iov is consumed); 0 or errno. */
static int writev_all(int fd, struct iovec *iov, int cnt) {
  while (cnt > 0 && iov->iov_len == 0) iov++, cnt--;
  while (cnt > 0) {
    ssize_t r = writev(fd, iov, cnt > IOV_MAX ? IOV_MAX : cnt);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    /* A short write: step over what landed and go on from the middle of a chunk. */
    size_t left = (size_t)r;
    while (cnt > 0 && left >= iov->iov_len) left -= iov->iov_len, iov++, cnt--;
    if (cnt > 0) {
      iov->iov_base = (char *)iov->iov_base + left;
      iov->iov_len -= left;
    }
    while (cnt > 0 && iov->iov_len == 0) iov++, cnt--;
  }
  return 0;
}

/* A failed write leaves file and hash disagreeing: the handle is poisoned and the error names the file. */
static void write_failed(digest_handle *h, st_error *e, int err, const char *syscall, const char *detail) {
  char fdname[32];
  h->poisoned = 1;
  snprintf(fdname, sizeof fdname, "fd %d", h->fd);
  st_fail(e, ST_APPLY, err, syscall, h->name ? h->name : fdname, "%s", detail);
}

static void execute(napi_env env, void *data) {
  st_pool_thread_setup();
  (void)env;
  digest_work *w = data;
  if (w->do_write) {
    if ((w->err = writev_all(w->h->fd, w->iov, w->n)) != 0) return;
    if (w->h->drop_behind) drop_behind(w->h);
  }
  for (int i = 0; i < w->n; i++) EVP_DigestUpdate(w->h->ctx, w->hash[i].iov_base, w->hash[i].iov_len);
}

static void complete(napi_env env, napi_status status, void *data) {
  digest_work *w = data;
  w->h->busy = 0;
  if (status != napi_ok && !w->err) w->err = ECANCELED;
  if (w->err) {
    st_error e;
    char detail[96];
    snprintf(detail, sizeof detail, "cannot write %zu bytes of a digested stream", w->total);
    write_failed(w->h, &e, w->err, "writev", detail);
    napi_reject_deferred(env, w->deferred, st_error_value(env, &e));
  } else {
    napi_value n;
    napi_create_double(env, (double)w->total, &n);
    napi_resolve_deferred(env, w->deferred, n);
  }
  napi_delete_reference(env, w->handle_ref);
  napi_delete_reference(env, w->buffers_ref);
  napi_delete_async_work(env, w->work);
  free(w->iov);
  free(w->hash);
  free(w);
}

/* Why h cannot take another write/update now; NULL when it can. */
static const char *appending_misuse(const digest_handle *h, int do_write) {
  return h->busy       ? "a write or update on this digest writer is still running: await it first"
         : h->finished ? "digest() was already called on this digest writer"
         : h->poisoned ? "an earlier write of this digest writer failed"
         : do_write && h->fd < 0 ? "this digest writer has no file descriptor"
                                 : NULL;
}

/* digestWrite(handle, buffers: Buffer[], write: boolean) → Promise<number of bytes>. */
static napi_value digest_write(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (st_args(env, info, 3, 3, argv, "digestWrite(handle, buffers, write)")) return NULL;
  digest_handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  bool do_write = false, is_arr = false;
  napi_get_value_bool(env, argv[2], &do_write);
  napi_is_array(env, argv[1], &is_arr);
  const char *misuse = !is_arr ? "buffers must be an array of Buffers" : appending_misuse(h, do_write);
  if (misuse) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", misuse);
    return NULL;
  }
  uint32_t n;
  napi_get_array_length(env, argv[1], &n);
  digest_work *w = calloc(1, sizeof *w);
  w->iov = calloc(n ? n : 1, sizeof *w->iov);
  w->hash = calloc(n ? n : 1, sizeof *w->hash);
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    bool is_buf;
    napi_get_element(env, argv[1], i, &el);
    napi_is_buffer(env, el, &is_buf);
    if (!is_buf) {
      free(w->iov);
      free(w->hash);
      free(w);
      st_throw_msg(env, "ERR_INVALID_ARGUMENT", "buffers must be an array of Buffers");
      return NULL;
    }
    napi_get_buffer_info(env, el, &w->iov[i].iov_base, &w->iov[i].iov_len);
    w->hash[i] = w->iov[i];
    w->total += w->iov[i].iov_len;
  }
  w->n = (int)n;
  w->h = h;
  w->do_write = do_write;
  h->busy = 1;
  /* The wrapper passes an array it owns and never changes: one reference keeps the Buffers alive. */
  napi_create_reference(env, argv[0], 1, &w->handle_ref);
  napi_create_reference(env, argv[1], 1, &w->buffers_ref);
  return st_queue(env, "stratum.digestWrite", execute, complete, w, &w->deferred, &w->work);
}

/* digestFinal(handle) → lowercase hex. */
static napi_value digest_final(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (st_args(env, info, 1, 1, argv, "digestFinal(handle)")) return NULL;
  digest_handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  const char *misuse = h->busy       ? "a write or update on this digest writer is still running: await it first"
                       : h->finished ? "digest() was already called on this digest writer"
                       : h->poisoned ? "an earlier write of this digest writer failed: the digest would be wrong"
                                     : NULL;
  if (misuse) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", misuse);
    return NULL;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  h->finished = 1;
  if (EVP_DigestFinal_ex(h->ctx, md, &len) != 1) {
    napi_throw_error(env, "ERR_APPLY", "OpenSSL could not finalise the digest");
    return NULL;
  }
  static const char hex[] = "0123456789abcdef";
  char out[EVP_MAX_MD_SIZE * 2 + 1];
  for (unsigned int i = 0; i < len; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  napi_value s;
  napi_create_string_latin1(env, out, len * 2, &s);
  return s;
}

/* ---- appending from another module (tls.c): bytes received in C go through the same handle ---- */

digest_handle *st_digest_get(napi_env env, napi_value v) { return get_handle(env, v); }

const char *st_digest_claim(digest_handle *h) {
  const char *misuse = appending_misuse(h, 1);
  if (!misuse) h->busy = 1;
  return misuse;
}

void st_digest_release(digest_handle *h) { h->busy = 0; }

int st_digest_append(digest_handle *h, const void *buf, size_t len) {
  struct iovec one = {.iov_base = (void *)buf, .iov_len = len};
  int err = writev_all(h->fd, &one, 1);
  if (err) {
    h->poisoned = 1;
    return err;
  }
  EVP_DigestUpdate(h->ctx, buf, len);
  if (h->drop_behind) drop_behind(h);
  return 0;
}

napi_status st_init_digest(napi_env env, napi_value exports) {
  napi_status s;
  if ((s = st_export(env, exports, "digestCreate", digest_create)) != napi_ok) return s;
  if ((s = st_export(env, exports, "digestWrite", digest_write)) != napi_ok) return s;
  return st_export(env, exports, "digestFinal", digest_final);
}
