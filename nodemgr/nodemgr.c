/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* kactor-nodemgr: arguments, configuration, and the event loop. The rest is in manager.c. */

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "manager.h"

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
               "     --cluster-secret-file PATH  The cluster secret (required with --listen/--join)\n"
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

static char **strv_free_(char **v) {
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
        return NULL;
}

static void strv_freep_(char ***v) {
        strv_free_(*v);
}

static int split_list(const char *s, char ***ret) {
        size_t n = 0;
        char **v = NULL;
        _cleanup_free_ char *copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                char **nv = realloc(v, (n + 2) * sizeof(char *));
                if (!nv)
                        return -ENOMEM;
                v = nv;
                v[n] = strdup(t);
                if (!v[n])
                        return -ENOMEM;
                v[++n] = NULL;
        }
        if (!v)
                return -EINVAL;
        *ret = v;
        return 0;
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_BUS, ARG_RUNTIME_DIR, ARG_MODULE_PATH, ARG_GPUS, ARG_GPU_DEVICES, ARG_NUM_CPUS,
               ARG_WORKER, ARG_CGROUP_MANAGER, ARG_CGROUP_NAME, ARG_CHECKPOINT_INTERVAL,
               ARG_LINEAGE_MEMORY, ARG_OBJECT_STORE_MEMORY, ARG_ACCESS_GROUP, ARG_LISTEN, ARG_JOIN,
               ARG_CLUSTER_SECRET_FILE, ARG_PROBE_INTERVAL, ARG_PROBE_TIMEOUT, ARG_SUSPECT_TIMEOUT,
               ARG_REPLICAS };
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
                { "probe-interval-ms", required_argument, NULL, ARG_PROBE_INTERVAL },
                { "probe-timeout-ms", required_argument, NULL, ARG_PROBE_TIMEOUT },
                { "suspect-timeout-ms", required_argument, NULL, ARG_SUSPECT_TIMEOUT },
                { "replicas", required_argument, NULL, ARG_REPLICAS },
                { "verbose", no_argument, NULL, 'v' },
                {}
        };
        ManagerConfig config = { .checkpoint_interval = UINT32_MAX, .replicas = UINT_MAX };
        char *module_path[64] = {};
        size_t n_module_path = 0;
        char *join[65] = {};
        size_t n_join = 0;
        _cleanup_free_ char *worker = NULL;
        _cleanup_(strv_freep_) char **gpu_devices = NULL;
        _cleanup_(manager_freep) Manager *m = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "hv", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("kactor-nodemgr %s\n", KACTOR_VERSION);
                        return 0;
                case ARG_BUS:
                        config.bus_address = optarg;
                        break;
                case ARG_RUNTIME_DIR:
                        config.runtime_dir = optarg;
                        break;
                case ARG_MODULE_PATH:
                        if (n_module_path + 1 >= ELEMENTSOF(module_path)) {
                                log_error("Too many --module-path options.");
                                return 2;
                        }
                        module_path[n_module_path++] = optarg;
                        break;
                case ARG_GPUS: {
                        char *end;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (!*optarg || *end || n > 1024) {
                                log_error("Invalid --gpus value: %s", optarg);
                                return 2;
                        }
                        config.n_gpus = (unsigned) n;
                        break;
                }
                case ARG_GPU_DEVICES:
                        gpu_devices = strv_free_(gpu_devices);
                        if (split_list(optarg, &gpu_devices) < 0) {
                                log_error("Invalid --gpu-devices value: %s", optarg);
                                return 2;
                        }
                        config.gpu_devices = gpu_devices;
                        break;
                case ARG_NUM_CPUS: {
                        char *end;
                        double d = strtod(optarg, &end);
                        if (!*optarg || *end || !(d > 0) || d > 1e6) {
                                log_error("Invalid --num-cpus value: %s", optarg);
                                return 2;
                        }
                        config.num_cpus = d;
                        break;
                }
                case ARG_WORKER:
                        config.worker_path = optarg;
                        break;
                case ARG_CGROUP_MANAGER:
                        if (cgroup_manager_kind_from_string(optarg) < 0 || streq(optarg, "auto")) {
                                log_error("Invalid --cgroup-manager value: %s (systemd, cgroupfs or none)", optarg);
                                return 2;
                        }
                        config.cgroup_manager = optarg;
                        break;
                case ARG_CGROUP_NAME:
                        if (!*optarg || strchr(optarg, '/') || optarg[0] == '.') {
                                log_error("Invalid --cgroup-name value: %s", optarg);
                                return 2;
                        }
                        config.cgroup_name = optarg;
                        break;
                case ARG_CHECKPOINT_INTERVAL: {
                        char *end;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (!*optarg || *end || n >= UINT32_MAX) {
                                log_error("Invalid --checkpoint-interval value: %s", optarg);
                                return 2;
                        }
                        config.checkpoint_interval = (uint32_t) n;
                        break;
                }
                case ARG_LINEAGE_MEMORY:
                case ARG_OBJECT_STORE_MEMORY: {
                        char *end;
                        unsigned long long n = strtoull(optarg, &end, 10);
                        if (!*optarg || *end || n == 0) {
                                log_error("Invalid --%s value: %s",
                                          c == ARG_LINEAGE_MEMORY ? "lineage-memory" : "object-store-memory", optarg);
                                return 2;
                        }
                        if (c == ARG_LINEAGE_MEMORY)
                                config.lineage_max = n;
                        else
                                config.object_store_max = n;
                        break;
                }
                case ARG_ACCESS_GROUP:
                        config.access_group = optarg;
                        break;
                case ARG_LISTEN:
                        config.cluster_listen = optarg;
                        break;
                case ARG_JOIN:
                        if (n_join + 1 >= ELEMENTSOF(join)) {
                                log_error("Too many --join options.");
                                return 2;
                        }
                        join[n_join++] = optarg;
                        config.cluster_join = join;
                        break;
                case ARG_CLUSTER_SECRET_FILE:
                        config.cluster_secret_file = optarg;
                        break;
                case ARG_PROBE_INTERVAL:
                case ARG_PROBE_TIMEOUT:
                case ARG_SUSPECT_TIMEOUT: {
                        char *end;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (!*optarg || *end || n == 0 || n > 3600000) {
                                log_error("Invalid %s value: %s", argv[optind - 1], optarg);
                                return 2;
                        }
                        uint64_t usec = (uint64_t) n * 1000;
                        if (c == ARG_PROBE_INTERVAL)
                                config.probe_interval_usec = usec;
                        else if (c == ARG_PROBE_TIMEOUT)
                                config.probe_timeout_usec = usec;
                        else
                                config.suspect_timeout_usec = usec;
                        break;
                }
                case ARG_REPLICAS: {
                        char *end;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (!*optarg || *end || n > 8) {
                                log_error("Invalid --replicas value: %s (0 to 8)", optarg);
                                return 2;
                        }
                        config.replicas = (unsigned) n;
                        break;
                }
                case 'v':
                        log_set_max_level(LOG_DEBUG);
                        break;
                default:
                        return 2;
                }
        if (optind < argc) {
                log_error("Unexpected argument: %s", argv[optind]);
                return 2;
        }
        if (config.n_gpus > 0 && config.gpu_devices) {
                log_error("--gpus and --gpu-devices exclude each other.");
                return 2;
        }
        if ((config.cluster_listen || config.cluster_join) && !config.cluster_secret_file) {
                log_error("--listen and --join need --cluster-secret-file.");
                return 2;
        }
        if (n_module_path > 0)
                config.module_path = module_path;
        if (!config.worker_path) {
                worker = default_worker_path();
                if (!worker)
                        return 1;
                config.worker_path = worker;
        }

        r = manager_new(&config, &m);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the node manager: %m");
                return 1;
        }
        r = manager_start(m);
        if (r < 0)
                return 1;
        r = sd_event_loop(m->event);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                return 1;
        }
        log_info("Stopped.");
        return 0;
}
