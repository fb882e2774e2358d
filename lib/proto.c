/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <endian.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec.h"
#include "macro.h"
#include "proto.h"

void buffer_free(Buffer *b) {
        free(b->data);
        *b = (Buffer){};
}

int buffer_grow(Buffer *b, size_t n) {
        if (b->cap - b->end >= n)
                return 0;

        /* Offsets into b stay valid (a frame being packed holds one): the data is not moved, only
         * the allocation (buffer_compact() moves it, where nothing holds an offset). */
        size_t want = b->end + n;
        size_t cap = MAX(b->cap * 2, (size_t) 4096);
        while (cap < want)
                cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->cap = cap;
        return 0;
}

void buffer_compact(Buffer *b) {
        if (b->start == 0)
                return;
        size_t used = b->end - b->start;
        memmove(b->data, b->data + b->start, used);
        b->start = 0;
        b->end = used;
}

int buffer_reserve_read(Buffer *b, size_t n) {
        if (b->cap - b->end < n)
                buffer_compact(b);
        return buffer_reserve(b, n);
}

void buffer_consume(Buffer *b, size_t n) {
        b->start += n;
        if (b->start >= b->end)
                b->start = b->end = 0;
}

int buffer_msgpack_write(void *data, const char *buf, size_t len) {
        Buffer *b = data;

        if (buffer_reserve(b, len) < 0)
                return -1;
        /* msgpack-c writes a field at a time, mostly 1, 2, 3, 5 or 9 bytes: each copied inline
         * rather than by a call to memcpy() (a tenth of a worker's time under batched calls). */
        char *q = b->data + b->end;
        switch (len) {
        case 1:
                q[0] = buf[0];
                break;
        case 2:
                memcpy(q, buf, 2);
                break;
        case 3:
                memcpy(q, buf, 3);
                break;
        case 5:
                memcpy(q, buf, 5);
                break;
        case 9:
                memcpy(q, buf, 9);
                break;
        default:
                if (len > 0)
                        memcpy(q, buf, len);
        }
        b->end += len;
        return 0;
}

size_t frame_begin(Buffer *b) {
        size_t off = b->end;
        /* Reserve the length; a failure here shows up again, and is reported, in frame_end(). */
        if (buffer_reserve(b, PROTO_HEADER_SIZE) >= 0) {
                off = b->end;
                b->end += PROTO_HEADER_SIZE;
        }
        return off;
}

int frame_end(Buffer *b, size_t offset) {
        if (offset + PROTO_HEADER_SIZE > b->end)
                return -ENOMEM;
        size_t len = b->end - offset - PROTO_HEADER_SIZE;
        if (len > PROTO_FRAME_MAX || len == 0) {
                b->end = offset;
                return -EMSGSIZE;
        }
        uint32_t le = htole32((uint32_t) len);
        memcpy(b->data + offset, &le, sizeof(le));
        return 0;
}

int frame_begin_request(Buffer *b, msgpack_packer *pk, uint32_t type, uint64_t id, uint32_t n_fields,
                        size_t *ret_offset) {
        size_t off = frame_begin(b);

        /* frame_begin() leaves a failed reservation for frame_end() to find: here it is found now, so
         * that no payload is written without room for its length. */
        if (b->end == off)
                return -ENOMEM;
        if (n_fields > UINT32_MAX - 2 || msgpack_pack_array(pk, 2 + n_fields) < 0 ||
            msgpack_pack_uint32(pk, type) < 0 || msgpack_pack_uint64(pk, id) < 0) {
                b->end = off;
                return -ENOMEM;
        }
        *ret_offset = off;
        return 0;
}

int frame_peek(const Buffer *b, const char **ret_payload, size_t *ret_len) {
        size_t avail = buffer_size(b);
        uint32_t le;

        if (avail < PROTO_HEADER_SIZE)
                return 0;
        memcpy(&le, b->data + b->start, sizeof(le));
        size_t len = le32toh(le);
        if (len > PROTO_FRAME_MAX)
                return -EMSGSIZE;
        if (len == 0)
                return -EBADMSG;
        if (avail - PROTO_HEADER_SIZE < len)
                return 0;
        *ret_payload = b->data + b->start + PROTO_HEADER_SIZE;
        *ret_len = len;
        return 1;
}

void frame_init(Frame *f) {
        *f = (Frame){};
        msgpack_unpacked_init(&f->header);
        msgpack_unpacked_init(&f->body);
}

void frame_done(Frame *f) {
        if (f->zone)
                msgpack_zone_free(f->zone);
        *f = (Frame){};
}

/* The first chunk of a frame's zone: most frames fit in it, so a parse allocates nothing. */
#define FRAME_ZONE_CHUNK 8192

int frame_parse(Frame *f, const char *payload, size_t len) {
        size_t off = 0;

        /* One zone per Frame, cleared between frames (msgpack_unpack_next() would make and free
         * one for every value). */
        if (!f->zone) {
                f->zone = msgpack_zone_new(FRAME_ZONE_CHUNK);
                if (!f->zone)
                        return -ENOMEM;
        } else
                msgpack_zone_clear(f->zone);
        f->header.data = f->body.data = (msgpack_object){ .type = MSGPACK_OBJECT_NIL };
        f->has_body = false;
        f->body_raw = NULL;
        f->body_len = 0;
        f->fields = NULL;
        f->n_fields = 0;

        size_t header_len;
        if (codec_check_bounds(payload, len, &header_len) < 0)
                return -EBADMSG;
        if (header_len < len && codec_check_bounds(payload + header_len, len - header_len, NULL) < 0)
                return -EBADMSG;
        msgpack_unpack_return u = msgpack_unpack(payload, len, &off, f->zone, &f->header.data);
        if (u != MSGPACK_UNPACK_SUCCESS && u != MSGPACK_UNPACK_EXTRA_BYTES)
                return -EBADMSG;

        const msgpack_object *h = &f->header.data;
        if (h->type != MSGPACK_OBJECT_ARRAY || h->via.array.size < 2 ||
            h->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            h->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            h->via.array.ptr[0].via.u64 > UINT32_MAX)
                return -EBADMSG;

        f->type = (uint32_t) h->via.array.ptr[0].via.u64;
        f->id = h->via.array.ptr[1].via.u64;
        f->fields = h->via.array.ptr + 2;
        f->n_fields = h->via.array.size - 2;

        if (off < len) {
                size_t body_off = off;
                if (msgpack_unpack(payload, len, &off, f->zone, &f->body.data) != MSGPACK_UNPACK_SUCCESS)
                        return -EBADMSG;
                if (off != len)
                        return -EBADMSG;
                if (codec_validate(&f->body.data) < 0)
                        return -EBADMSG;
                f->has_body = true;
                f->body_raw = payload + body_off;
                f->body_len = len - body_off;
        }
        return 0;
}

const msgpack_object *frame_field(const Frame *f, uint32_t i) {
        return i < f->n_fields ? &f->fields[i] : NULL;
}

int frame_field_u64(const Frame *f, uint32_t i, uint64_t *ret) {
        const msgpack_object *o = frame_field(f, i);
        if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return -EBADMSG;
        *ret = o->via.u64;
        return 0;
}

int frame_field_i64(const Frame *f, uint32_t i, int64_t *ret) {
        const msgpack_object *o = frame_field(f, i);
        if (!o)
                return -EBADMSG;
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                *ret = o->via.i64;
        else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
                *ret = (int64_t) o->via.u64;
        else
                return -EBADMSG;
        return 0;
}

int frame_field_bool(const Frame *f, uint32_t i, bool *ret) {
        const msgpack_object *o = frame_field(f, i);
        if (!o || o->type != MSGPACK_OBJECT_BOOLEAN)
                return -EBADMSG;
        *ret = o->via.boolean;
        return 0;
}

int frame_field_str(const Frame *f, uint32_t i, const char **ret, size_t *ret_len) {
        const msgpack_object *o = frame_field(f, i);
        if (!o || o->type != MSGPACK_OBJECT_STR)
                return -EBADMSG;
        *ret = o->via.str.ptr;
        *ret_len = o->via.str.size;
        return 0;
}

int frame_field_strdup(const Frame *f, uint32_t i, char **ret) {
        const char *s;
        size_t n;
        int r = frame_field_str(f, i, &s, &n);
        if (r < 0)
                return r;
        if (n > 0 && memchr(s, 0, n))
                return -EBADMSG;
        char *d = strndup(n > 0 ? s : "", n); /* msgpack gives NULL for "" */
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

int frame_field_id(const Frame *f, uint32_t i, int8_t ext_type, kactor_id *ret) {
        const msgpack_object *o = frame_field(f, i);
        if (!o)
                return -EBADMSG;
        return codec_object_to_id(o, ext_type, ret);
}

int pack_str(msgpack_packer *pk, const char *s, size_t len) {
        if (msgpack_pack_str(pk, len) < 0 || msgpack_pack_str_body(pk, s, len) < 0)
                return -ENOMEM;
        return 0;
}

int pack_cstr(msgpack_packer *pk, const char *s) {
        if (!s)
                return msgpack_pack_nil(pk) < 0 ? -ENOMEM : 0;
        return pack_str(pk, s, strlen(s));
}

ssize_t proto_recv(int sock, void *buf, size_t len, int flags, FdQueue *q) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * FD_QUEUE_MAX)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = len };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };

        ssize_t n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
        if (n < 0)
                return n;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                        if (q && q->n < FD_QUEUE_MAX)
                                q->fds[q->n++] = fd;
                        else
                                (void) close(fd);
                }
        }
        return n;
}

ssize_t proto_send_fd(int sock, const void *buf, size_t len, int flags, int fd) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        return sendmsg(sock, &mh, flags);
}

int fd_queue_take(FdQueue *q) {
        if (q->n == 0)
                return -EBADMSG;
        int fd = q->fds[0];
        memmove(q->fds, q->fds + 1, (q->n - 1) * sizeof(int));
        q->n--;
        return fd;
}

void fd_queue_close(FdQueue *q) {
        for (size_t i = 0; i < q->n; i++)
                (void) close(q->fds[i]);
        q->n = 0;
}
