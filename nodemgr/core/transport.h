/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The connections of workers. A worker speaks the native protocol on its socketpair, and that
 * protocol's transport (buffers, flushing, reading frames) is the native layer's (native/conn.c);
 * but the worker protocol is the core's: spawn makes a worker's connection and sends it INIT and
 * EXEC frames, tasks and the manager close them. So the core reaches the transport through this
 * table, which the native layer installs on the manager at setup (native_setup()), never by calling
 * up. Without it (a manager nothing serves yet) no worker can be started.
 */

#include <stddef.h>

#include "core-forward.h"
#include "manager.h"

typedef struct TransportOps {
        /* A connection on fd (taken over) for a worker. */
        int (*conn_new)(Manager *m, int fd, Worker *worker, Conn **ret);
        void (*close)(Conn *c);
        /* Finishes a frame begun at off with frame_begin(): when r (what packing it returned) is
         * negative the frame is dropped and r returned; else it is closed and flushed soon. */
        int (*end_frame)(Conn *c, size_t off, int r);
        /* Drops every hold, owned object and pending Get of the connection. */
        void (*release_all)(Conn *c);
        /* Reads and handles whatever the peer has sent (a worker that exited). */
        void (*drain)(Conn *c);
        int (*flush)(Conn *c);
        /* Writes what every connection has queued (once per loop iteration). */
        void (*flush_all)(Manager *m);
        /* After a restart (persist.c): placeholders for the connections that were open, what they
         * hold, and the connection with an id prefix. */
        int (*ghost_new)(Manager *m, uint64_t prefix, uid_t uid, Conn **ret);
        int (*hold)(Conn *c, kactor_id id, bool actor);
        void (*own)(Conn *c, Object *o);
        Conn *(*find)(Manager *m, uint64_t prefix);
} TransportOps;

static inline int transport_conn_new(Manager *m, int fd, Worker *worker, Conn **ret) {
        if (!m->transport)
                return -ENOTCONN;
        return m->transport->conn_new(m, fd, worker, ret);
}

static inline void transport_close(Manager *m, Conn *c) {
        m->transport->close(c);
}

static inline int transport_end_frame(Manager *m, Conn *c, size_t off, int r) {
        return m->transport->end_frame(c, off, r);
}

static inline void transport_release_all(Manager *m, Conn *c) {
        m->transport->release_all(c);
}

static inline void transport_drain(Manager *m, Conn *c) {
        m->transport->drain(c);
}

static inline int transport_flush(Manager *m, Conn *c) {
        return m->transport->flush(c);
}

static inline void transport_flush_all(Manager *m) {
        if (m->transport)
                m->transport->flush_all(m);
}
