/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* kactor-nodemgr: arguments, configuration, and the event loop. The rest is in manager.c. */

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "manager.h"
#include "manager-bus.h"
#include "native.h"
#include "persist.h"
#include "parse-util.h"
#include "remote.h"
#include "strv.h"
#include "trace-bus.h"

static void help(void) {
        printf("kactor-nodemgr [OPTIONS...]\n\n"
               "The kactor node manager: runs actors and tasks on this node, serves io.kactor.NodeManager1 on\n"
               "D-Bus and the native protocol on RUNTIME_DIR/nodemgr.sock.\n\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "     --bus ADDRESS          D-Bus address to serve on (default: the system bus)\n"
               "     --runtime-dir DIR      Runtime directory (default: /run/kactor)\n"
               "     --module-path DIRS     Directories to look modules up in, ':'-separated (repeatable;\n"
               "                            default: %s)\n"
               "     --gpus N               The node has N GPUs (ids 0..N-1)\n"
               "     --gpu-devices LIST     The node's GPUs as device nodes, ','-separated\n"
               "     --num-cpus N           CPUs to schedule (default: the online CPUs)\n"
               "     --worker PATH          The kactor-worker binary\n"
               "     --checkpoint-interval N  Checkpoint actors that can save every N logged calls\n"
               "                            (default: 1000; 0: never)\n"
               "     --lineage-memory BYTES Lineage all actors may keep before checkpoints are forced\n"
               "                            or calls refused (default: 1 GiB)\n"
               "     --forget-dead-after SEC  How long a dead actor stays listed, with its state and\n"
               "                            death cause, before it leaves the bus (default: 300)\n"
               "     --access-group GROUP   Besides root, members of GROUP may use the node manager\n"
               "                            (default: kactor)\n"
               "     --object-store-memory BYTES  Values kept in memory before the least recently used\n"
               "                            ones are evicted (spilled, or rebuilt when needed; default: 2 GiB)\n"
               "     --cgroup-manager=systemd|cgroupfs|none\n"
               "                            How actors get their cgroups (default: systemd when PID 1\n"
               "                            is systemd and on the bus, else cgroupfs)\n"
               "     --cgroup-name NAME     Name of this node manager's cgroup subtree (kactor/NAME)\n"
               "     --listen ADDR:PORT     Listen for peer node managers on this TCP address\n"
               "     --join ADDR:PORT       Join the cluster through this seed (repeatable)\n"
               "     --cluster-secret-file PATH  The cluster's secrets, one per line, the first used to\n"
               "                            dial (with --listen/--join: this, or the three below;\n"
               "                            re-read on SIGHUP)\n"
               "     --cluster-cert PATH    This node's certificate (PEM), for TLS between peers instead\n"
               "                            of a secret (re-read on SIGHUP)\n"
               "     --cluster-key PATH     Its private key (PEM)\n"
               "     --cluster-ca PATH      The CA that signs the cluster's certificates (PEM)\n"
               "     --probe-interval-ms N  SWIM protocol period (default: 100)\n"
               "     --probe-timeout-ms N   Direct ping timeout before indirect probes (default: 50)\n"
               "     --suspect-timeout-ms N Suspicion time before a member is declared dead (default: 600)\n"
               "     --replicas R           Peers that keep each actor's lineage before a call is\n"
               "                            acknowledged (default: 1; 0: none)\n"
               "  -v --verbose              Log debug messages\n",
               KACTOR_MODULEDIR);
}

static char *default_worker_path(void) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0) {
                self[n] = 0;
                char *slash = strrchr(self, '/');
                if (slash) {
                        char *p;
                        *slash = 0;
                        if (asprintf(&p, "%s/kactor-worker", self) >= 0) {
                                if (access(p, X_OK) == 0)
                                        return p;
                                free(p);
                        }
                }
        }
        return strdup(KACTOR_LIBEXECDIR "/kactor-worker");
}

/* The node's GPUs as a ','-separated list of device nodes; empty entries are skipped, an empty list is
 * an error. */
static int parse_gpu_devices(const char *s, char ***ret) {
        _cleanup_strv_free_ char **v = NULL;
        int r;

        r = strv_split(s, ",", &v);
        if (r < 0)
                return r;
        if (strv_isempty(v))
                return -EINVAL;
        *ret = TAKE_PTR(v);
        return 0;
}

/* A decimal (parse_uint64()) in [min, max]. */
static int parse_uint64_in_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
        uint64_t n;
        int r;

        r = parse_uint64(s, &n);
        if (r < 0)
                return r;
        if (n < min || n > max)
                return -ERANGE;
        *ret = n;
        return 0;
}

/* What parse_argv() fills in and run() uses; main() frees what they own. */
static ManagerConfig arg_config = { .checkpoint_interval = UINT32_MAX, .replicas = UINT_MAX,
                                    .dead_grace_usec = UINT64_MAX };
static char *arg_module_path[64];
static size_t arg_n_module_path;
static char *arg_join[65];
static size_t arg_n_join;
static char **arg_gpu_devices;
static char *arg_worker;

/* Returns > 0 to run, 0 to exit successfully (--help, --version), < 0 on a bad argument (logged). */
static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_BUS, ARG_RUNTIME_DIR, ARG_MODULE_PATH, ARG_GPUS, ARG_GPU_DEVICES, ARG_NUM_CPUS,
               ARG_WORKER, ARG_CGROUP_MANAGER, ARG_CGROUP_NAME, ARG_CHECKPOINT_INTERVAL,
               ARG_LINEAGE_MEMORY, ARG_OBJECT_STORE_MEMORY, ARG_ACCESS_GROUP, ARG_LISTEN, ARG_JOIN,
               ARG_CLUSTER_SECRET_FILE, ARG_PROBE_INTERVAL, ARG_PROBE_TIMEOUT, ARG_SUSPECT_TIMEOUT,
               ARG_REPLICAS, ARG_FORGET_DEAD_AFTER, ARG_CLUSTER_CERT, ARG_CLUSTER_KEY, ARG_CLUSTER_CA };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "bus", required_argument, NULL, ARG_BUS },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "module-path", required_argument, NULL, ARG_MODULE_PATH },
                { "gpus", required_argument, NULL, ARG_GPUS },
                { "gpu-devices", required_argument, NULL, ARG_GPU_DEVICES },
                { "num-cpus", required_argument, NULL, ARG_NUM_CPUS },
                { "worker", required_argument, NULL, ARG_WORKER },
                { "checkpoint-interval", required_argument, NULL, ARG_CHECKPOINT_INTERVAL },
                { "lineage-memory", required_argument, NULL, ARG_LINEAGE_MEMORY },
                { "object-store-memory", required_argument, NULL, ARG_OBJECT_STORE_MEMORY },
                { "access-group", required_argument, NULL, ARG_ACCESS_GROUP },
                { "cgroup-manager", required_argument, NULL, ARG_CGROUP_MANAGER },
                { "cgroup-name", required_argument, NULL, ARG_CGROUP_NAME },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "join", required_argument, NULL, ARG_JOIN },
                { "cluster-secret-file", required_argument, NULL, ARG_CLUSTER_SECRET_FILE },
                { "cluster-cert", required_argument, NULL, ARG_CLUSTER_CERT },
                { "cluster-key", required_argument, NULL, ARG_CLUSTER_KEY },
                { "cluster-ca", required_argument, NULL, ARG_CLUSTER_CA },
                { "probe-interval-ms", required_argument, NULL, ARG_PROBE_INTERVAL },
                { "probe-timeout-ms", required_argument, NULL, ARG_PROBE_TIMEOUT },
                { "suspect-timeout-ms", required_argument, NULL, ARG_SUSPECT_TIMEOUT },
                { "replicas", required_argument, NULL, ARG_REPLICAS },
                { "forget-dead-after", required_argument, NULL, ARG_FORGET_DEAD_AFTER },
                { "verbose", no_argument, NULL, 'v' },
                {}
        };
        ManagerConfig *config = &arg_config;
        uint64_t n;
        double d;
        int c;

        while ((c = getopt_long(argc, argv, "hv", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("kactor-nodemgr %s\n", KACTOR_VERSION);
                        return 0;
                case ARG_BUS:
                        config->bus_address = optarg;
                        break;
                case ARG_RUNTIME_DIR:
                        config->runtime_dir = optarg;
                        break;
                case ARG_MODULE_PATH:
                        if (arg_n_module_path + 1 >= ELEMENTSOF(arg_module_path))
                                return log_error_errno(-E2BIG, "Too many --module-path options.");
                        arg_module_path[arg_n_module_path++] = optarg;
                        config->module_path = arg_module_path;
                        break;
                case ARG_GPUS:
                        if (parse_uint64_in_range(optarg, 0, 1024, &n) < 0)
                                return log_error_errno(-EINVAL, "Invalid --gpus value: %s", optarg);
                        config->n_gpus = (unsigned) n;
                        break;
                case ARG_GPU_DEVICES:
                        arg_gpu_devices = strv_free(arg_gpu_devices);
                        if (parse_gpu_devices(optarg, &arg_gpu_devices) < 0)
                                return log_error_errno(-EINVAL, "Invalid --gpu-devices value: %s", optarg);
                        config->gpu_devices = arg_gpu_devices;
                        break;
                case ARG_NUM_CPUS:
                        if (parse_nonnegative_double(optarg, &d) < 0 || d == 0 || d > 1e6)
                                return log_error_errno(-EINVAL, "Invalid --num-cpus value: %s", optarg);
                        config->num_cpus = d;
                        break;
                case ARG_WORKER:
                        config->worker_path = optarg;
                        break;
                case ARG_CGROUP_MANAGER:
                        if (cgroup_manager_kind_from_string(optarg) < 0 || streq(optarg, "auto"))
                                return log_error_errno(-EINVAL,
                                                       "Invalid --cgroup-manager value: %s (systemd, cgroupfs or none)",
                                                       optarg);
                        config->cgroup_manager = optarg;
                        break;
                case ARG_CGROUP_NAME:
                        if (!*optarg || strchr(optarg, '/') || optarg[0] == '.')
                                return log_error_errno(-EINVAL, "Invalid --cgroup-name value: %s", optarg);
                        config->cgroup_name = optarg;
                        break;
                case ARG_CHECKPOINT_INTERVAL:
                        /* UINT32_MAX means "the default" in ManagerConfig. */
                        if (parse_uint64_in_range(optarg, 0, UINT32_MAX - 1, &n) < 0)
                                return log_error_errno(-EINVAL, "Invalid --checkpoint-interval value: %s", optarg);
                        config->checkpoint_interval = (uint32_t) n;
                        break;
                case ARG_FORGET_DEAD_AFTER:
                        if (parse_timeout(optarg, &n) < 0)
                                return log_error_errno(-EINVAL, "Invalid --forget-dead-after value: %s", optarg);
                        config->dead_grace_usec = n;
                        break;
                case ARG_LINEAGE_MEMORY:
                        if (parse_uint64_in_range(optarg, 1, UINT64_MAX, &n) < 0)
                                return log_error_errno(-EINVAL, "Invalid --lineage-memory value: %s", optarg);
                        config->lineage_max = n;
                        break;
                case ARG_OBJECT_STORE_MEMORY:
                        if (parse_uint64_in_range(optarg, 1, UINT64_MAX, &n) < 0)
                                return log_error_errno(-EINVAL, "Invalid --object-store-memory value: %s", optarg);
                        config->object_store_max = n;
                        break;
                case ARG_ACCESS_GROUP:
                        config->access_group = optarg;
                        break;
                case ARG_LISTEN:
                        config->cluster_listen = optarg;
                        break;
                case ARG_JOIN:
                        if (arg_n_join + 1 >= ELEMENTSOF(arg_join))
                                return log_error_errno(-E2BIG, "Too many --join options.");
                        arg_join[arg_n_join++] = optarg;
                        config->cluster_join = arg_join;
                        break;
                case ARG_CLUSTER_SECRET_FILE:
                        config->cluster_secret_file = optarg;
                        break;
                case ARG_CLUSTER_CERT:
                        config->cluster_cert_file = optarg;
                        break;
                case ARG_CLUSTER_KEY:
                        config->cluster_key_file = optarg;
                        break;
                case ARG_CLUSTER_CA:
                        config->cluster_ca_file = optarg;
                        break;
                case ARG_PROBE_INTERVAL:
                case ARG_PROBE_TIMEOUT:
                case ARG_SUSPECT_TIMEOUT:
                        if (parse_uint64_in_range(optarg, 1, 3600000, &n) < 0)
                                return log_error_errno(-EINVAL, "Invalid --%s value: %s",
                                                       c == ARG_PROBE_INTERVAL ? "probe-interval-ms" :
                                                       c == ARG_PROBE_TIMEOUT  ? "probe-timeout-ms" :
                                                                                 "suspect-timeout-ms",
                                                       optarg);
                        if (c == ARG_PROBE_INTERVAL)
                                config->probe_interval_usec = n * 1000;
                        else if (c == ARG_PROBE_TIMEOUT)
                                config->probe_timeout_usec = n * 1000;
                        else
                                config->suspect_timeout_usec = n * 1000;
                        break;
                case ARG_REPLICAS:
                        if (parse_uint64_in_range(optarg, 0, 8, &n) < 0)
                                return log_error_errno(-EINVAL, "Invalid --replicas value: %s (0 to 8)", optarg);
                        config->replicas = (unsigned) n;
                        break;
                case 'v':
                        log_set_max_level(LOG_DEBUG);
                        break;
                default:
                        return -EINVAL; /* getopt said why */
                }

        if (optind < argc)
                return log_error_errno(-EINVAL, "Unexpected argument: %s", argv[optind]);
        if (config->n_gpus > 0 && config->gpu_devices)
                return log_error_errno(-EINVAL, "--gpus and --gpu-devices exclude each other.");
        bool cert = config->cluster_cert_file || config->cluster_key_file || config->cluster_ca_file;
        if (cert && !(config->cluster_cert_file && config->cluster_key_file && config->cluster_ca_file))
                return log_error_errno(-EINVAL, "--cluster-cert, --cluster-key and --cluster-ca go together.");
        if (cert && config->cluster_secret_file)
                return log_error_errno(-EINVAL, "--cluster-secret-file and --cluster-cert exclude each other.");
        if ((config->cluster_listen || config->cluster_join) && !config->cluster_secret_file && !cert)
                return log_error_errno(-EINVAL, "--listen and --join need --cluster-secret-file, or --cluster-cert, "
                                       "--cluster-key and --cluster-ca.");
        return 1;
}

/* The node manager's life: the manager and its layers, the event loop, then the teardown. */
static int run(void) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        if (!arg_config.worker_path) {
                arg_worker = default_worker_path();
                if (!arg_worker)
                        return -ENOMEM;
                arg_config.worker_path = arg_worker;
        }

        /* The core: state, the object store, resources, isolation settings. */
        r = manager_new(&arg_config, &m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the node manager: %m");

        /* systemctl reload sends SIGHUP: a cluster reads its secret file (certificate) again, and
         * watches it itself (cluster_new()); a node without one has nothing to reload and must not
         * die of it: blocked, it stays pending, unseen. */
        sigset_t hup;
        sigemptyset(&hup);
        sigaddset(&hup, SIGHUP);
        (void) sigprocmask(SIG_BLOCK, &hup, NULL);

        /* The cluster, with --listen or --join: it installs its hooks on the manager, which frees it. */
        r = remote_setup(m, &arg_config);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the cluster: %m");

        /* Its layers: isolation and tracing, the native socket, D-Bus. */
        r = manager_start(m);
        if (r < 0)
                return r; /* logged */
        r = native_setup(m);
        if (r < 0)
                return log_error_errno(r, "Failed to listen on %s: %m", m->socket_path);
        /* What a previous node manager left running: its actors, objects and clients' holds. */
        r = persist_restore(m);
        if (r < 0) {
                manager_detach(m);
                return r; /* logged */
        }
        r = manager_bus_setup(m, arg_config.bus_address);
        if (r >= 0)
                r = trace_bus_setup(m); /* io.kactor.Trace1, on the same connection */
        if (r < 0) {
                /* Logged. The actors restored stay for a node manager that gets further. */
                manager_detach(m);
                return r;
        }
        manager_notify_ready(m);

        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        log_info("Stopped.");
        return 0;
}

/* As systemd's DEFINE_MAIN_FUNCTION: 2 for a bad command line, 1 for a failure, 0 otherwise. */
int main(int argc, char *argv[]) {
        int r;

        r = parse_argv(argc, argv);
        if (r > 0)
                r = run() < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        else
                r = r < 0 ? 2 : EXIT_SUCCESS;

        arg_gpu_devices = strv_free(arg_gpu_devices);
        free(arg_worker);
        return r;
}
