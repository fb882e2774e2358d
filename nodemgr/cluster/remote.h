/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Actors across the cluster (docs/cluster.md): placement on peers, calls, gets and handles across
 * nodes, lineage replication to R peers before a result is delivered, and the rebuilding of a dead
 * node's actors on a surviving replica. The peer transport is peer.c; the frames are PEER_MSG_*
 * from PEER_MSG_DATA_FIRST (peer-proto.h).
 *
 * Where an actor lives: the node that made its id (the id's high half), unless this node learnt
 * otherwise (a placement it made, or a MOVED message). A node that does not host an actor it is
 * asked about answers with where it went, when it knows.
 *
 * Only remote_setup() is called from outside: the manager reaches the layer through the ClusterHooks
 * it installs, the peer transport through ClusterOps. remote-internal.h holds what its files share.
 */

#include <stdbool.h>

#include "cluster-hooks.h"
#include "manager.h"
#include "proto.h"

typedef struct Remote Remote;

#define REMOTE_REPLICAS_DEFAULT 1u

/* Sets up the cluster layer of a node whose config asks for one (cluster_listen or cluster_join): the
 * peer transport (peer.c), remote actors, and the manager's ClusterHooks, through which the manager
 * frees it. Returns 0 and does nothing on a single node, or a negative errno (-EINVAL for a bad
 * address or secret). */
int remote_setup(Manager *m, const ManagerConfig *config);
