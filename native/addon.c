/* Module entry and the small N-API helpers shared by the other files. */
#include "common.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void st_fail(st_error *e, int kind, int err, const char *syscall, const char *path, const char *fmt, ...) {
  e->kind = kind;
  e->err = err;
  e->syscall = syscall;
  snprintf(e->path, sizeof e->path, "%s", path ? path : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->detail, sizeof e->detail, fmt, ap);
  va_end(ap);
}

static const char *kind_code(int kind) {
  switch (kind) {
    case ST_UNSAFE: return "ERR_UNSAFE_PATH";
    case ST_MOUNT: return "ERR_MOUNT";
    case ST_INVALID: return "ERR_INVALID_ARGUMENT";
    default: return "ERR_APPLY";
  }
}

napi_value st_error_value(napi_env env, const st_error *e) {
  char msg[PATH_MAX + 1024];
  const char *errtext = e->err ? strerror(e->err) : NULL;
  const char *errname = e->err ? strerrorname_np(e->err) : NULL;
  switch (e->kind) {
    case ST_UNSAFE:
      snprintf(msg, sizeof msg, "unsafe path \"%s\": %s%s%s%s", e->path, e->detail, errname ? " (" : "",
               errname ? errname : "", errname ? ")" : "");
      break;
    case ST_MOUNT:
      snprintf(msg, sizeof msg, "%s: %s%s%s", e->path, e->detail, errtext ? ": " : "", errtext ? errtext : "");
      break;
    default:
      snprintf(msg, sizeof msg, "\"%s\": %s%s%s%s%s", e->path, e->detail, e->syscall ? ": " : "",
               e->syscall ? e->syscall : "", errtext ? ": " : "", errtext ? errtext : "");
  }
  napi_value code, message, err, v;
  napi_create_string_utf8(env, kind_code(e->kind), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &err);
  napi_create_string_utf8(env, e->path, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, err, "path", v);
  napi_create_string_utf8(env, e->detail, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, err, "reason", v);
  if (e->err) {
    napi_create_int32(env, e->err, &v);
    napi_set_named_property(env, err, "errno", v);
    if (errname) {
      napi_create_string_utf8(env, errname, NAPI_AUTO_LENGTH, &v);
      napi_set_named_property(env, err, "errnoName", v);
    }
  }
  if (e->syscall) {
    napi_create_string_utf8(env, e->syscall, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, err, "syscall", v);
  }
  return err;
}

void st_throw(napi_env env, const st_error *e) { napi_throw(env, st_error_value(env, e)); }

void st_throw_msg(napi_env env, const char *code, const char *msg) { napi_throw_type_error(env, code, msg); }

int st_args(napi_env env, napi_callback_info info, size_t required, size_t capacity, napi_value *argv, const char *usage) {
  size_t argc = capacity;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= required) return 0;
  st_throw_msg(env, "ERR_INVALID_ARGUMENT", usage);
  return -1;
}

napi_value st_queue(napi_env env, const char *name, napi_async_execute_callback execute, napi_async_complete_callback complete, void *data,
                    napi_deferred *deferred, napi_async_work *work) {
  napi_value promise, resource;
  napi_create_promise(env, deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource);
  napi_create_async_work(env, NULL, resource, execute, complete, data, work);
  napi_queue_async_work(env, *work);
  return promise;
}

int st_get_fd(napi_env env, napi_value v, int *fd) {
  int32_t n;
  if (napi_get_value_int32(env, v, &n) != napi_ok || n < 0) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", "expected a file descriptor (a non-negative integer)");
    return -1;
  }
  *fd = n;
  return 0;
}

char *st_get_string(napi_env env, napi_value v, const char *what, size_t *len_out) {
  size_t len;
  bool is_buffer = false;
  void *bytes = NULL;
  napi_is_buffer(env, v, &is_buffer);
  /* A Buffer is taken as the bytes it holds: names that are not UTF-8 survive. */
  if (is_buffer) {
    napi_get_buffer_info(env, v, &bytes, &len);
  } else if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s must be a string or a Buffer", what);
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", msg);
    return NULL;
  }
  char *s = malloc(len + 1);
  if (!s) {
    napi_throw_error(env, "ERR_APPLY", "out of memory");
    return NULL;
  }
  if (is_buffer) {
    if (len > 0) memcpy(s, bytes, len);
    s[len] = '\0';
  } else {
    napi_get_value_string_utf8(env, v, s, len + 1, &len);
  }
  if (strlen(s) != len) {
    st_error e;
    st_fail(&e, ST_UNSAFE, 0, NULL, s, "%s contains a NUL byte", what);
    free(s);
    st_throw(env, &e);
    return NULL;
  }
  if (len_out) *len_out = len;
  return s;
}

/*
 * libuv's pool threads do bulk work (write + hash, extract, decompress) for a main thread that is
 * the pipeline's single point: it receives, parses tar and hands out the work. A SCHED_NORMAL
 * thread woken for a job preempts the thread that woke it; on two busy cores that stalled the main
 * thread inside most calls that queue work (bench: 180 ms of a 1.3 s pull). SCHED_BATCH threads
 * get the same CPU share (same nice) but never preempt on wakeup. Unprivileged, per thread.
 */
static atomic_int want_batch;
static __thread int thread_policy_set;

void st_pool_thread_setup(void) {
  if (thread_policy_set || !atomic_load_explicit(&want_batch, memory_order_relaxed)) return;
  thread_policy_set = 1;
  struct sched_param param = {0};
  sched_setscheduler(0, SCHED_BATCH, &param); /* advisory: on failure the thread just stays as it was */
}

/* batchPoolThreads(): from now on, each pool thread that runs a job of this addon becomes SCHED_BATCH. */
static napi_value batch_pool_threads(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  atomic_store(&want_batch, 1);
  return NULL;
}

napi_status st_export(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_status s = napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  if (s != napi_ok) return s;
  return napi_set_named_property(env, exports, name, fn);
}

static napi_value init(napi_env env, napi_value exports) {
  if (st_init_batch(env, exports) != napi_ok || st_init_files(env, exports) != napi_ok ||
      st_init_mount(env, exports) != napi_ok || st_init_digest(env, exports) != napi_ok ||
      st_init_tls(env, exports) != napi_ok ||
      st_export(env, exports, "batchPoolThreads", batch_pool_threads) != napi_ok) {
    napi_throw_error(env, "ERR_APPLY", "stratum addon: registration failed");
    return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
