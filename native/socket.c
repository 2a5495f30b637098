/*
 * A TCP socket for plain-HTTP blob bodies that libuv does not own: connect, send and recv are
 * non-blocking calls, and waiting for the socket is a uv_poll on Node's own event loop
 * (sockWait), so no thread is ever parked on the network. The body itself goes from the socket
 * to the file and the hash on the thread pool (digestReceive, digest.c), never as JavaScript
 * chunks. The descriptor belongs to the caller, who closes it with closeFd.
 */
#include "common.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* Throws a network error (its code is the errno's name, as Node's socket errors have) saying `detail`. */
static napi_value throw_net(napi_env env, int err, const char *syscall, const char *detail) {
  st_error e;
  st_fail(&e, ST_NETWORK, err, syscall, "", "%s", detail);
  st_throw(env, &e);
  return NULL;
}

/* Reads `n` arguments, the first a descriptor; -1 after throwing. */
static int fd_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, int *fd, const char *usage) {
  return st_args(env, info, n, n, argv, usage) || st_get_fd(env, argv[0], fd) ? -1 : 0;
}

/* sockConnect(address: numeric IPv4/IPv6, port) → fd: a non-blocking connect, usually still in progress (wait writable, then sockError). */
static napi_value sock_connect(napi_env env, napi_callback_info info) {
  static const char usage[] = "sockConnect(address, port 1-65535)";
  napi_value argv[2];
  if (st_args(env, info, 2, 2, argv, usage)) return NULL;
  int32_t port;
  char address[INET6_ADDRSTRLEN + 8];
  size_t alen;
  if (napi_get_value_string_utf8(env, argv[0], address, sizeof address, &alen) != napi_ok || napi_get_value_int32(env, argv[1], &port) != napi_ok ||
      port <= 0 || port > 65535) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", usage);
    return NULL;
  }
  char what[INET6_ADDRSTRLEN + 40];
  snprintf(what, sizeof what, strchr(address, ':') ? "cannot connect to [%s]:%d" : "cannot connect to %s:%d", address, port);
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  char service[16];
  snprintf(service, sizeof service, "%d", port);
  if (getaddrinfo(address, service, &hints, &ai) != 0) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", "sockConnect: address must be a numeric IPv4 or IPv6 address");
    return NULL;
  }
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(ai);
    return throw_net(env, errno, "socket", what);
  }
  int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(ai);
  if (r != 0 && errno != EINPROGRESS) {
    int err = errno;
    close(fd);
    return throw_net(env, err, "connect", what);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  napi_value v;
  napi_create_int32(env, fd, &v);
  return v;
}

/* sockError(fd, what): throws the socket's pending error (SO_ERROR: how a connect ended) as a network error. */
static napi_value sock_error(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd, err = 0;
  if (fd_args(env, info, 2, argv, &fd, "sockError(fd, what)")) return NULL;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (!err) return NULL;
  char *what = st_get_string(env, argv[1], "what", NULL);
  if (!what) return NULL;
  throw_net(env, err, "connect", what);
  free(what);
  return NULL;
}

/* sockSend(fd, buffer) → bytes sent (0: the socket buffer is full, wait writable). */
static napi_value sock_send(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  bool is_buf = false;
  if (fd_args(env, info, 2, argv, &fd, "sockSend(fd, buffer)")) return NULL;
  napi_is_buffer(env, argv[1], &is_buf);
  if (!is_buf) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", "sockSend(fd, buffer): buffer must be a Buffer");
    return NULL;
  }
  void *data;
  size_t len;
  napi_get_buffer_info(env, argv[1], &data, &len);
  ssize_t r;
  do r = send(fd, data, len, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return throw_net(env, errno, "send", "cannot send the request");
  napi_value v;
  napi_create_double(env, r < 0 ? 0 : (double)r, &v);
  return v;
}

static void free_buffer(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* sockRecv(fd, maxBytes) → Buffer with what is there; empty at end of stream; null when nothing is there yet (wait readable). */
static napi_value sock_recv(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  int64_t max;
  if (fd_args(env, info, 2, argv, &fd, "sockRecv(fd, maxBytes)")) return NULL;
  if (napi_get_value_int64(env, argv[1], &max) != napi_ok || max <= 0 || max > (16 << 20)) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", "sockRecv(fd, maxBytes 1..16 MiB)");
    return NULL;
  }
  char *buf = malloc((size_t)max);
  if (!buf) {
    napi_throw_error(env, "ERR_APPLY", "out of memory");
    return NULL;
  }
  ssize_t r;
  do r = recv(fd, buf, (size_t)max, 0);
  while (r < 0 && errno == EINTR);
  napi_value v;
  if (r < 0) {
    int err = errno;
    free(buf);
    if (err == EAGAIN || err == EWOULDBLOCK) {
      napi_get_null(env, &v);
      return v;
    }
    return throw_net(env, err, "recv", "cannot receive");
  }
  if (r == 0) {
    free(buf);
    napi_create_buffer(env, 0, NULL, &v);
  } else {
    /* A short read must not pin the whole buffer for as long as its bytes live. */
    if ((size_t)r < (size_t)max / 2) {
      char *fit = realloc(buf, (size_t)r);
      if (fit) buf = fit;
    }
    napi_create_external_buffer(env, (size_t)r, buf, free_buffer, NULL, &v);
  }
  return v;
}

/* sockShutdown(fd): shutdown(SHUT_RDWR); a sockWait on it returns at once (the peer sees the end too). Errors ignored. */
static napi_value sock_shutdown(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (fd_args(env, info, 1, argv, &fd, "sockShutdown(fd)")) return NULL;
  shutdown(fd, SHUT_RDWR);
  return NULL;
}

/* ---- sockWait: a uv_poll on Node's loop, with a uv_timer for the timeout ---- */

typedef struct {
  uv_poll_t poll;
  uv_timer_t timer;
  napi_env env;
  napi_deferred deferred;
  napi_async_context context;
  napi_ref resource;
  int timeout_ms;
  int open_handles;
  int settled;
} wait_req;

static void wait_handle_closed(uv_handle_t *h) {
  wait_req *w = h->data;
  if (--w->open_handles == 0) free(w);
}

/* Settles the promise inside a callback scope, so the awaiting JavaScript runs now, not at some later tick. */
static void wait_settle(wait_req *w, int err) {
  if (w->settled) return;
  w->settled = 1;
  uv_poll_stop(&w->poll); /* before any JavaScript can close the fd */
  uv_timer_stop(&w->timer);
  napi_env env = w->env;
  napi_handle_scope hs;
  napi_open_handle_scope(env, &hs);
  napi_value resource;
  napi_get_reference_value(env, w->resource, &resource);
  napi_callback_scope cs;
  napi_open_callback_scope(env, resource, w->context, &cs);
  if (err == 0) {
    napi_value u;
    napi_get_undefined(env, &u);
    napi_resolve_deferred(env, w->deferred, u);
  } else {
    st_error e;
    if (err == ETIMEDOUT)
      st_fail(&e, ST_NETWORK, ETIMEDOUT, "poll", "", "no data for %d ms", w->timeout_ms);
    else
      st_fail(&e, ST_NETWORK, err, "poll", "", "cannot wait for the socket");
    napi_reject_deferred(env, w->deferred, st_error_value(env, &e));
  }
  napi_close_callback_scope(env, cs);
  napi_async_destroy(env, w->context);
  napi_delete_reference(env, w->resource);
  napi_close_handle_scope(env, hs);
  uv_close((uv_handle_t *)&w->poll, wait_handle_closed);
  uv_close((uv_handle_t *)&w->timer, wait_handle_closed);
}

static void wait_polled(uv_poll_t *h, int status, int events) {
  (void)events;
  /* An error on the socket (status < 0) is reported by the recv/send that follows. */
  (void)status;
  wait_settle(h->data, 0);
}

static void wait_timed_out(uv_timer_t *t) { wait_settle(t->data, ETIMEDOUT); }

/* sockWait(fd, writable, timeoutMs) → Promise<void>: resolves once the socket is readable (or writable); rejects ETIMEDOUT. */
static napi_value sock_wait(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  bool writable = false;
  int32_t timeout;
  if (fd_args(env, info, 3, argv, &fd, "sockWait(fd, writable, timeoutMs)")) return NULL;
  napi_get_value_bool(env, argv[1], &writable);
  if (napi_get_value_int32(env, argv[2], &timeout) != napi_ok) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", "sockWait(fd, writable, timeoutMs)");
    return NULL;
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_throw_error(env, "ERR_APPLY", "no event loop");
    return NULL;
  }
  wait_req *w = calloc(1, sizeof *w);
  int rc = uv_poll_init_socket(loop, &w->poll, fd);
  if (rc != 0) {
    free(w);
    return throw_net(env, -rc, "uv_poll_init", "cannot wait for the socket");
  }
  uv_timer_init(loop, &w->timer);
  w->poll.data = w->timer.data = w;
  w->open_handles = 2;
  w->env = env;
  w->timeout_ms = timeout;
  napi_value promise, resource, name;
  napi_create_promise(env, &w->deferred, &promise);
  napi_create_object(env, &resource);
  napi_create_reference(env, resource, 1, &w->resource);
  napi_create_string_utf8(env, "stratum.sockWait", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &w->context);
  uv_poll_start(&w->poll, writable ? UV_WRITABLE : UV_READABLE | UV_DISCONNECT, wait_polled);
  if (timeout >= 0) uv_timer_start(&w->timer, wait_timed_out, (uint64_t)timeout, 0);
  return promise;
}

napi_status st_init_socket(napi_env env, napi_value exports) {
  napi_status s;
  if ((s = st_export(env, exports, "sockConnect", sock_connect)) != napi_ok) return s;
  if ((s = st_export(env, exports, "sockError", sock_error)) != napi_ok) return s;
  if ((s = st_export(env, exports, "sockSend", sock_send)) != napi_ok) return s;
  if ((s = st_export(env, exports, "sockRecv", sock_recv)) != napi_ok) return s;
  if ((s = st_export(env, exports, "sockWait", sock_wait)) != napi_ok) return s;
  return st_export(env, exports, "sockShutdown", sock_shutdown);
}
