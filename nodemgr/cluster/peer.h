/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The cluster layer of a node manager: a TCP listener, connections to peers (PeerConn: refcounted,
 * non-blocking, each with its own io and timeout sources) secured with TLS 1.3 (peer-tls.c: a key
 * derived from the cluster secret, or certificates), and the I/O of SWIM membership (membership.c
 * holds the logic). docs/cluster.md describes it.
 */

#include <stdint.h>
#include <systemd/sd-event.h>

#include "membership.h"
#include "proto.h"

typedef struct Cluster Cluster;

/* What the peer layer asks of the node it serves (remote.c gives it), with the userdata of the
 * config: it knows no more of the node than this. */
typedef struct ClusterOps {
        /* A frame of the data range from an authenticated peer. < 0 drops the peer (malformed frame). */
        int (*handle_frame)(void *userdata, const char *from, const Frame *f);
        /* A connection to the peer node_id was (re)established. */
        void (*peer_connected)(void *userdata, const char *node_id);
        /* The member table changed. */
        void (*members_changed)(void *userdata);
        /* DEAD_NOTICE to the member `to`: packs where the actors that moved live now. */
        int (*pack_moved)(void *userdata, msgpack_packer *pk, const char *to);
        /* A DEAD_NOTICE arrived: the actors it says moved. */
        void (*dead_notice)(void *userdata, const msgpack_object *moved);
        /* This node's CPUs and GPUs, total and free, into *ret (memory is read by the peer layer). */
        void (*get_resources)(void *userdata, MemberResources *ret);
} ClusterOps;

typedef struct ClusterConfig {
        sd_event *event;
        const char *node_id;        /* this node's */
        const char *listen;         /* ADDR:PORT, or NULL */
        char **join;                /* seeds ADDR:PORT, NULL-terminated, or NULL */
        const char *secret_file;    /* the keyring: one secret per line, the primary first */
        const char *cert_file;      /* or this node's certificate, its key and the cluster's CA (all */
        const char *key_file;       /* three, instead of secret_file) */
        const char *ca_file;
        MembershipConfig membership;
        const ClusterOps *ops;
        void *userdata;
} ClusterConfig;

/* Starts listening and joining, and re-reads the credentials on SIGHUP (cluster_reload_secrets()).
 * Without TLS when the environment has KACTOR_PEER_PLAINTEXT=1 (for measurements). Returns 0, or a
 * negative errno (-EINVAL for a bad address, secret or certificate), logged. */
int cluster_new(const ClusterConfig *config, Cluster **ret);
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
/* Reads the secret file (or the certificate, its key and the CA) again: connections made from now on
 * use it, and a connection whose key left the keyring (whose peer's certificate no longer verifies)
 * is closed, to be dialled again. A file that cannot be read or is not valid is refused, and what
 * was read before stays. Returns 0 or a negative errno, logged. */
int cluster_reload_secrets(Cluster *c);
/* This node's free CPUs and GPUs changed: its member entry says so from now on. */
void cluster_resources_changed(Cluster *c);
