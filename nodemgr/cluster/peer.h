/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The cluster layer of a node manager: a TCP listener, connections to peers (PeerConn: refcounted,
 * non-blocking, each with its own io and timeout sources), authentication with the cluster secret,
 * and the I/O of SWIM membership (membership.c holds the logic). docs/cluster.md describes it.
 */

#include <stdint.h>
#include <systemd/sd-event.h>

#include "membership.h"
#include "proto.h"

typedef struct Cluster Cluster;
typedef struct Manager Manager;

typedef struct ClusterConfig {
        const char *listen;         /* ADDR:PORT, or NULL */
        char **join;                /* seeds ADDR:PORT, NULL-terminated, or NULL */
        const char *secret_file;
        MembershipConfig membership;
} ClusterConfig;

/* Starts listening and joining. Returns 0, or a negative errno (-EINVAL for a bad address or secret). */
int cluster_new(Manager *m, const ClusterConfig *config, Cluster **ret);
Cluster *cluster_free(Cluster *c);
Membership *cluster_membership(Cluster *c);
const char *cluster_self_id(Cluster *c);

/* A data frame to a peer (remote.c): begin, pack [type, id, fields...] (+ a body) with pk into out,
 * then end with what packing returned. -ENOTCONN when there is no authenticated connection to the
 * node. Frames are sent at the end of the event loop iteration (cluster_flush()). */
typedef struct PeerFrame {
        struct PeerConn *conn;
        msgpack_packer *pk;
        Buffer *out;
        size_t offset;
} PeerFrame;
int cluster_frame_begin(Cluster *c, const char *node, PeerFrame *ret);
int cluster_frame_end(PeerFrame *f, int r);
void cluster_flush(Cluster *c);
/* This node's free CPUs and GPUs changed: its member entry says so from now on. */
void cluster_resources_changed(Cluster *c);
