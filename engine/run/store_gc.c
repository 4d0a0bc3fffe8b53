/*
 * store_gc.c: the home's use of the store during a run: files put and got with progress events
 * (a download resumes where it stopped), what an abandoned run left deleted, and the pruning at
 * the end of a run (the newest PB_ST_KEEP_RUNS runs and PB_ST_KEEP_BASELINES baselines are kept,
 * and always the baseline the home records). Layout: docs/store.md.
 * Role: engine/run, the home side (run_ctx.h). Prerequisites: transfer/store.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plexburst/units.h"
#include "run_ctx.h"

typedef struct xfer {
    rx *x;
    const char *what;
} xfer;

static int on_xfer(const pb_progress *p, void *payload)
{
    xfer *t = payload;
    pb_run__progress(t->x, t->what, p->bytes_done, p->bytes_total, NULL);
    return pb_run__cancelled(t->x);
}

int pb_run__put_file(rx *x, const char *name, const char *path, const char *what)
{
    xfer t = {x, what};
    return pb_store_put(x->store, name, path, on_xfer, &t, x->err);
}

int pb_run__get_file(rx *x, const char *name, const char *path, const char *what)
{
    xfer t = {x, what};
    uint64_t from = 0, got = 0;
    int error = pb_store_get_file(x->store, name, path, on_xfer, &t, &from, &got, x->err);
    char b1[PB_UNITS_BYTES_MAX];
    if (!error && from)
        pb_run__log(x, "info", "resumed the download of %s at %s", name,
                    pb_units_bytes(b1, sizeof(b1), from));
    return error;
}

/* Deletes what a run left in the store (best effort). */
void pb_run__store_drop_run(rx *x, const char *run_id)
{
    char prefix[128];
    pb_error e = PB_ERROR_INIT;
    snprintf(prefix, sizeof(prefix), PB_ST_RUN_FMT, run_id);
    if (x->store)
        pb_store_del_prefix(x->store, prefix, &e);
}

typedef struct idlist {
    char ids[64][48];
    int64_t mtime[64];
    size_t n;
} idlist;

static int collect_ids(const char *name, const pb_store_info *st, void *payload)
{
    idlist *l = payload;
    const char *p = strchr(name, '/');
    if (!p)
        return 0;
    const char *q = strchr(p + 1, '/');
    if (!q || (size_t)(q - p - 1) >= sizeof(l->ids[0]))
        return 0;
    size_t n = (size_t)(q - p - 1);
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->ids[i]) == n && strncmp(l->ids[i], p + 1, n) == 0) {
            if (st->mtime_ns > l->mtime[i])
                l->mtime[i] = st->mtime_ns;
            return 0;
        }
    if (l->n < 64) {
        snprintf(l->ids[l->n], sizeof(l->ids[0]), "%.*s", (int)n, p + 1);
        l->mtime[l->n++] = st->mtime_ns;
    }
    return 0;
}

/* Keeps the newest runs and baselines (and always the one the home records). */
void pb_run__store_prune(rx *x)
{
    pb_error e = PB_ERROR_INIT;
    for (int pass = 0; pass < 2; pass++) {
        idlist *l = calloc(1, sizeof(*l));
        if (!l)
            return;
        const char *top = pass == 0 ? "runs/" : "baseline/";
        pb_store_list(x->store, top, collect_ids, l, &e);
        size_t keep = pass == 0 ? PB_ST_KEEP_RUNS : PB_ST_KEEP_BASELINES;
        for (size_t kept = 0; kept < l->n; kept++) {
            /* selection: move the newest to the front */
            size_t best = kept;
            for (size_t i = kept + 1; i < l->n; i++)
                if (l->mtime[i] > l->mtime[best])
                    best = i;
            char tid[48];
            int64_t tm = l->mtime[kept];
            memcpy(tid, l->ids[kept], sizeof(tid));
            memcpy(l->ids[kept], l->ids[best], sizeof(tid));
            l->mtime[kept] = l->mtime[best];
            memcpy(l->ids[best], tid, sizeof(tid));
            l->mtime[best] = tm;
        }
        for (size_t i = keep; i < l->n; i++) {
            if (pass == 1 && strcmp(l->ids[i], x->r->baseline_id) == 0)
                continue;
            if (pass == 0 && strcmp(l->ids[i], x->run_id) == 0)
                continue;
            char prefix[128];
            snprintf(prefix, sizeof(prefix), "%s%s/", top, l->ids[i]);
            pb_store_del_prefix(x->store, prefix, &e);
        }
        free(l);
    }
}
