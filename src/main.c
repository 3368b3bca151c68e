/*
 * cairnd: a node of a Cairn cluster. Reading order of the server: main.c
 * (this file), config.c, server.c (lifecycle, request routing), session.c
 * (client connections), reads.c (linearizable reads), ../raft/fsm.c (the
 * state machine), kv.c (the key space).
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "config.h"
#include "dr_archive.h"
#include "http.h"
#include "log.h"
#include "server.h"

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

/* The restore library's warnings (a fallback to an earlier snapshot) go to
 * the log like any other. */
static void log_restore_warning(const char *msg)
{
    log_warn("restore: %s", msg);
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct server *srv;
    char errmsg[1024];
    const char *trace = getenv("CAIRN_TRACE");
    uv_loop_t loop;
    int rv;

    if (config_parse(&cfg, argc, argv, errmsg, sizeof(errmsg)) != 0) {
        fprintf(stderr, "cairnd: %s\n", errmsg);
        config_free(&cfg);
        return 2;
    }
    if (cfg.help) {
        config_print_help(argv[0]);
        config_free(&cfg);
        return 0;
    }
    if (cfg.version) {
        printf("cairnd %d.%d\n", CAIRN_VERSION_MAJOR, CAIRN_VERSION_MINOR);
        config_free(&cfg);
        return 0;
    }
    log_init(cfg.id, trace != NULL && strcmp(trace, "1") == 0 ? LOG_TRACE
                     : strcmp(cfg.log_level, "trace") == 0    ? LOG_TRACE
                     : strcmp(cfg.log_level, "warn") == 0     ? LOG_WARN
                     : strcmp(cfg.log_level, "error") == 0    ? LOG_ERROR
                                                              : LOG_INFO);
    dr_set_warn(log_restore_warning);
    /* Return large blocks (snapshot buffers, big values) to the system when
     * freed: glibc's dynamic threshold otherwise keeps tens of MiB of freed
     * heap resident after the first snapshot (measured: ~70 MiB per node at
     * 100k keys of 1 KiB; see docs/performance.md). */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    /* A client that goes away mid-write must not kill the node. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        fprintf(stderr, "cairnd: out of memory\n");
        return 1;
    }
    rv = server_start(srv, &cfg, &loop, errmsg, sizeof(errmsg));
    if (rv != 0) {
        fprintf(stderr, "cairnd: error: %s\n", errmsg);
        log_error("%s", errmsg);
        /* Nothing was served yet. Still close the handles server_start left
         * open and free what main owns, so that a refused start ends as
         * cleanly as a stop: the sanitizer builds report any leak at exit,
         * and the operator's error must not drown in that report. */
        dr_close(&srv->dr);
        uv_walk(&loop, close_walk_cb, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        watch_hub_free(&srv->hub);
        reads_free(&srv->reads);
        fsm_close(&srv->fsm);
        node_metrics_close(&srv->metrics);
        free(srv);
        config_free(&cfg);
        return 1;
    }
    /* HTTP once the node serves clients: its workers are clients. */
    if (http_start(&cfg, &srv->http, errmsg, sizeof(errmsg)) != 0) {
        fprintf(stderr, "cairnd: error: %s\n", errmsg);
        log_error("%s", errmsg);
        server_stop(srv);
        srv->exit_code = 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    http_free(srv->http);
    rv = srv->exit_code;
    if (srv->dr.abandoned) {
        /* A backup upload still runs on its thread and may read the key
         * space: exit without freeing it. */
        config_free(&cfg);
        return rv;
    }
    watch_hub_free(&srv->hub);
    reads_free(&srv->reads);
    fsm_close(&srv->fsm);
    node_metrics_close(&srv->metrics);
    free(srv);
    config_free(&cfg);
    return rv;
}
