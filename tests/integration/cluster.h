/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Clusters of node managers for the integration tests (docs/cluster.md): each node is a harness
 * (its own private bus and kactor-nodemgr) listening on a loopback address 127.X.Y.N, X.Y taken
 * from the test's PID, so that tests running in parallel never share an address.
 *
 *   TestSuite(cluster, .init = cluster_setup, .fini = cluster_teardown, .timeout = 120);
 *   Test(cluster, x) { cluster_start(3, NULL); ... cluster_nodes[1] ... }
 *
 * Waits are bounded (CLUSTER_WAIT_MS) and poll the state they expect; none sleeps for an outcome.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "harness.h"

#define CLUSTER_NODES_MAX 5
#define CLUSTER_WAIT_MS 10000u
#define CLUSTER_PEER_PORT 7946

extern Harness *cluster_nodes[CLUSTER_NODES_MAX];
extern char cluster_secret_path[64], cluster_bad_secret_path[64];

/* Writes the secrets; stops every node (waking frozen ones) and removes them. */
void cluster_setup(void);
void cluster_teardown(void);

uint64_t cluster_now_ms(void);
/* "127.X.Y.N:PORT" of node n. */
const char *cluster_node_address(unsigned n);
/* The same, as a socket address. */
struct sockaddr_in cluster_node_sockaddr(unsigned n);
/* A raw TCP connection to node n's peer port (no handshake), for attacks. Asserts. */
int cluster_connect_raw(unsigned n);
/* True when the node closes the connection within timeout_ms (whatever it sent before, e.g. HELLO). */
bool cluster_wait_closed(int fd, unsigned timeout_ms);
/* Starts node i listening on its address, joining through node 0 unless it is node 0; extra: more
 * nodemgr arguments (NULL-terminated) or NULL. */
Harness *cluster_start_node(unsigned i, const char *secret, const char *suspect_ms, const char *const *extra);
/* Starts nodes 0..n-1 and waits until every one sees every one alive. */
void cluster_start(size_t n, const char *suspect_ms);
void cluster_start_with(size_t n, const char *suspect_ms, const char *const *extra);
void cluster_wait_formed(size_t n);

typedef struct PeerView {
        char id[64];
        char state[16];
        uint32_t incarnation;
        double cpus;
        uint32_t gpus, gpus_free;
        uint64_t memory, memory_free;
} PeerView;

/* Reads Peers; returns the number of members (fills at most max). */
size_t cluster_read_peers(Harness *h, PeerView *ret, size_t max);
const char *cluster_node_id(Harness *h);
/* The state `h` has for member `id` ("" when unknown), and its incarnation. */
const char *cluster_peer_state(Harness *h, const char *id, uint32_t *ret_inc);
/* Waits until `h` has `id` in `state` with an incarnation >= min_inc. */
bool cluster_wait_peer_state(Harness *h, const char *id, const char *state, uint32_t min_inc, unsigned timeout_ms);

/* Creates a Counter (examples/counter.c) starting at `start` on node `on`, through `via`'s client c. */
kactor_actor cluster_create_counter_on(Harness *via, kactor_client *c, Harness *on, int64_t start);
/* Every running node's log, for failure messages (harness-owned). */
const char *cluster_logs(void);
/* Calls a method (args in JSON, or NULL) and waits for its value (bounded); on a timeout the test
 * fails with every node's log. The caller frees the value (an error result is an error value). */
kactor_value *cluster_call(kactor_client *c, kactor_actor a, const char *method, const char *args_json);
/* Calls a method that returns an integer, asserting it does. */
int64_t cluster_call_int(kactor_client *c, kactor_actor a, const char *method);
/* Kills node i's node manager with SIGKILL and its workers, as a crashed machine goes. */
void cluster_crash_node(size_t i);
