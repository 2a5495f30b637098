/*
 * applyProgram(rootFd, program: Buffer, datas: Buffer[]) → Promise<void>.
 * `program` is the ops encoded by src/sys/batch-encoding.ts (little-endian, strings
 * length-prefixed and NUL-terminated); file contents and xattr values stay in their own Buffers,
 * referenced by index and kept alive until the work completes. Decoding and every syscall run on
 * the libuv threadpool.
 */
#include "common.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  const void *base;
  size_t len;
} st_chunk;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref program_ref;
  napi_ref datas_ref;
  const uint8_t *program;
  size_t program_len;
  st_chunk *datas;
  uint32_t ndatas;
  int rootfd;
  int failed;
  uint32_t failed_index;
  st_error error;
} batch_work;

typedef struct {
  const uint8_t *p, *end;
  const batch_work *w;
} reader;

static int rd_u8(reader *r, uint8_t *v) {
  if (r->end - r->p < 1) return -1;
  *v = *r->p++;
  return 0;
}
static int rd_u32(reader *r, uint32_t *v) {
  if (r->end - r->p < 4) return -1;
  memcpy(v, r->p, 4);
  r->p += 4;
  return 0;
}
static int rd_i64(reader *r, int64_t *v) {
  if (r->end - r->p < 8) return -1;
  memcpy(v, r->p, 8);
  r->p += 8;
  return 0;
}
static int rd_str(reader *r, const char **s, size_t *len) {
  uint32_t n;
  if (rd_u32(r, &n) < 0 || (size_t)(r->end - r->p) < (size_t)n + 1 || r->p[n] != 0) return -1;
  *s = (const char *)r->p;
  if (len) *len = n;
  r->p += n + 1;
  return 0;
}
static int rd_data(reader *r, const void **data, size_t *len) {
  uint32_t i;
  if (rd_u32(r, &i) < 0 || i >= r->w->ndatas) return -1;
  *data = r->w->datas[i].base;
  *len = r->w->datas[i].len;
  return 0;
}

/* Decodes a meta block; xattrs go to *scratch (grown as needed). */
static int rd_meta(reader *r, st_meta *m, st_xattr **scratch, uint32_t *cap) {
  uint32_t nx;
  if (rd_u32(r, &m->mode) < 0 || rd_u32(r, &m->uid) < 0 || rd_u32(r, &m->gid) < 0 || rd_i64(r, &m->atime_sec) < 0 ||
      rd_u32(r, &m->atime_nsec) < 0 || rd_i64(r, &m->mtime_sec) < 0 || rd_u32(r, &m->mtime_nsec) < 0 ||
      rd_u32(r, &nx) < 0)
    return -1;
  if (nx > *cap) {
    st_xattr *grown = realloc(*scratch, nx * sizeof **scratch);
    if (!grown) return -1;
    *scratch = grown;
    *cap = nx;
  }
  for (uint32_t i = 0; i < nx; i++) {
    st_xattr *x = &(*scratch)[i];
    if (rd_str(r, &x->name, NULL) < 0 || rd_data(r, &x->value, &x->size) < 0) return -1;
  }
  m->nxattrs = nx;
  m->xattrs = *scratch;
  return 0;
}

static int decode_op(reader *r, st_op *op, st_xattr **scratch, uint32_t *cap) {
  uint8_t pad;
  memset(op, 0, sizeof *op);
  if (rd_u8(r, &op->op) < 0 || rd_u8(r, &op->kind) < 0 || rd_u8(r, &pad) < 0 || rd_u8(r, &pad) < 0 ||
      rd_str(r, &op->path, &op->path_len) < 0)
    return -1;
  int meta = 0;
  switch (op->op) {
    case OP_MKDIR: meta = 1; break;
    case OP_TIMES: meta = 1; break;
    case OP_FILE:
      if (rd_data(r, &op->data, &op->data_len) < 0) return -1;
      meta = 1;
      break;
    case OP_SYMLINK:
      if (rd_str(r, &op->target, &op->target_len) < 0) return -1;
      meta = 1;
      break;
    case OP_HARDLINK:
      if (rd_str(r, &op->target, &op->target_len) < 0) return -1;
      break;
    case OP_MKNOD:
      if (op->kind < NODE_CHAR || op->kind > NODE_FIFO || rd_u32(r, &op->major) < 0 || rd_u32(r, &op->minor) < 0)
        return -1;
      meta = 1;
      break;
    case OP_SETXATTR:
      if (rd_str(r, &op->target, &op->target_len) < 0 || rd_data(r, &op->data, &op->data_len) < 0) return -1;
      break;
    case OP_REMOVE:
    case OP_REMOVE_CHILDREN: break;
    default: return -1;
  }
  return meta ? rd_meta(r, &op->meta, scratch, cap) : 0;
}

static void execute(napi_env env, void *data) {
  st_pool_thread_setup();
  (void)env;
  batch_work *w = data;
  reader r = {w->program, w->program + w->program_len, w};
  st_ctx ctx;
  st_ctx_init(&ctx, w->rootfd);
  st_xattr *scratch = NULL;
  uint32_t cap = 0;
  for (uint32_t i = 0; r.p < r.end; i++) {
    st_op op;
    if (decode_op(&r, &op, &scratch, &cap) < 0) {
      st_fail(&w->error, ST_INVALID, 0, NULL, "", "malformed batch program at op %u", i);
      w->failed = 1;
      w->failed_index = i;
      break;
    }
    if (st_apply_op(&ctx, &op, &w->error) < 0) {
      w->failed = 1;
      w->failed_index = i;
      break;
    }
  }
  free(scratch);
  st_ctx_release(&ctx);
}

static void complete(napi_env env, napi_status status, void *data) {
  batch_work *w = data;
  if (status != napi_ok && !w->failed) {
    st_fail(&w->error, ST_APPLY, 0, NULL, "", "batch was cancelled");
    w->failed = 1;
  }
  if (w->failed) {
    napi_value err = st_error_value(env, &w->error), idx;
    napi_create_uint32(env, w->failed_index, &idx);
    napi_set_named_property(env, err, "index", idx);
    napi_reject_deferred(env, w->deferred, err);
  } else {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, w->deferred, undef);
  }
  napi_delete_reference(env, w->program_ref);
  napi_delete_reference(env, w->datas_ref);
  napi_delete_async_work(env, w->work);
  free(w->datas);
  free(w);
}

static napi_value apply_batch(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int rootfd;
  if (st_args(env, info, 3, 3, argv, "applyProgram(rootFd, program, datas)") || st_get_fd(env, argv[0], &rootfd) < 0) return NULL;
  bool is_buf, is_arr;
  napi_is_buffer(env, argv[1], &is_buf);
  napi_is_array(env, argv[2], &is_arr);
  if (!is_buf || !is_arr) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", "applyProgram(rootFd, program: Buffer, datas: Buffer[])");
    return NULL;
  }
  batch_work *w = calloc(1, sizeof *w);
  if (!w) {
    napi_throw_error(env, "ERR_APPLY", "out of memory");
    return NULL;
  }
  w->rootfd = rootfd;
  void *prog;
  napi_get_buffer_info(env, argv[1], &prog, &w->program_len);
  w->program = prog;
  napi_get_array_length(env, argv[2], &w->ndatas);
  w->datas = calloc(w->ndatas ? w->ndatas : 1, sizeof *w->datas);
  for (uint32_t i = 0; i < w->ndatas; i++) {
    napi_value el;
    void *base = NULL;
    size_t len = 0;
    napi_get_element(env, argv[2], i, &el);
    napi_is_buffer(env, el, &is_buf);
    if (!is_buf) {
      free(w->datas);
      free(w);
      st_throw_msg(env, "ERR_INVALID_ARGUMENT", "applyProgram: every data item must be a Buffer");
      return NULL;
    }
    napi_get_buffer_info(env, el, &base, &len);
    w->datas[i].base = base;
    w->datas[i].len = len;
  }
  /* The wrapper builds `datas` itself and never changes it, so one reference keeps every Buffer alive. */
  napi_create_reference(env, argv[1], 1, &w->program_ref);
  napi_create_reference(env, argv[2], 1, &w->datas_ref);
  return st_queue(env, "stratum.applyBatch", execute, complete, w, &w->deferred, &w->work);
}

napi_status st_init_batch(napi_env env, napi_value exports) { return st_export(env, exports, "applyProgram", apply_batch); }
