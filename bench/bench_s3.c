/*
 * bench_s3.c: times one upload or download through the S3 store (transfer/store_s3.c), for
 * bench/bench_s3.sh, which compares it with rclone against the same server.
 * Usage: bench_s3 put FILE s3://BUCKET/PREFIX NAME | bench_s3 get s3://BUCKET/PREFIX NAME FILE
 * Prints one line: "<op> <bytes> <seconds> <MB/s> requests=N retries=N parts=N".
 * Settings (endpoint, keys, part size) come from the environment, as for a run
 * (pb_transport_config_store_open).
 * Prerequisites: an S3 server (scripts/s3-test-server); built by tests/s3.cmake.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_s3.h"
#include "transport_config.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "put") != 0 && strcmp(argv[1], "get") != 0)) {
        fprintf(stderr, "usage: bench_s3 put FILE URL NAME | bench_s3 get URL NAME FILE\n");
        return 2;
    }
    int put = strcmp(argv[1], "put") == 0;
    const char *url = put ? argv[3] : argv[2];
    const char *name = put ? argv[4] : argv[3];
    const char *file = put ? argv[2] : argv[4];
    pb_error err = PB_ERROR_INIT;
    pb_store *s = NULL;
    if (pb_transport_config_store_open(&s, url, &err) != 0) {
        fprintf(stderr, "bench_s3: %s\n", err.msg);
        return 1;
    }
    double t0 = now();
    int rc;
    uint64_t bytes = 0;
    if (put) {
        rc = pb_store_put(s, name, file, NULL, NULL, &err);
        bytes = s->bytes_put;
    } else {
        char part[4200];
        snprintf(part, sizeof(part), "%s.part", file);
        unlink(part);
        rc = pb_store_get_file(s, name, file, NULL, NULL, NULL, &bytes, &err);
    }
    double dt = now() - t0;
    if (rc) {
        fprintf(stderr, "bench_s3: %s\n", err.msg);
        pb_store_free(s);
        return 1;
    }
    pb_store_s3_stats st;
    pb_store_s3_stats_get(s, &st);
    printf("%s %llu %.3f %.1f requests=%llu retries=%llu parts=%llu\n", argv[1],
           (unsigned long long)bytes, dt, (double)bytes / 1e6 / dt, (unsigned long long)st.requests,
           (unsigned long long)st.retries, (unsigned long long)st.parts);
    pb_store_free(s);
    return 0;
}
