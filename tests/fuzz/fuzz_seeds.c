/*
 * fuzz_seeds.c: writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/) from
 * real outputs of the code: a small tree's manifest, its compact LIST and the home's ANSWER to
 * it, the changeset and the solid bundle of a mkplex library with a few rows changed, the frames
 * of a conversation, and the S3 bodies and settings files as the services and the docs write
 * them. Run by hand when a format changes:
 *   build-fuzz/fuzz_seeds build/mkplex tests/fuzz/corpus
 * Built with the fuzz targets (PB_BUILD_FUZZERS=ON); the bundle seeds come from test_bundle
 * (PB_WRITE_FUZZ_SEEDS=tests/fuzz/corpus/bundle).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "fs.h"
#include "fuzz_util.h"
#include "plexburst/export.h"
#include "plexburst/fingerprint.h"
#include "plexburst/plex.h"
#include "plexburst/sqldiff.h"
#include "protocol.h"
#include "run_int.h"

static const char *out_root;

static void die(const char *what, const pb_error *e)
{
    fprintf(stderr, "fuzz_seeds: %s: %s\n", what, e ? e->msg : "failed");
    exit(1);
}

static void put(const char *target, const char *name, const void *data, size_t n)
{
    char dir[4200], path[4400];
    snprintf(dir, sizeof(dir), "%s/%s", out_root, target);
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0)
        die(path, NULL);
}

static void put_file(const char *target, const char *name, const char *src)
{
    FILE *f = fopen(src, "rb");
    static char buf[1 << 22];
    if (!f)
        die(src, NULL);
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    put(target, name, buf, n);
}

static void sh(const char *cmd)
{
    if (system(cmd) != 0)
        die(cmd, NULL);
}

/* A small cloud tree and a home that lacks a file, holds one in another version and one the
 * same: manifest, compact LIST, ANSWER. */
static void seeds_tree(const char *w)
{
    char cmd[8192], cloud[4200], home[4200], state[4200], list[4200], wanted[4200], ans[4200];
    pb_error e = PB_ERROR_INIT;
    snprintf(cloud, sizeof(cloud), "%s/cloud", w);
    snprintf(home, sizeof(home), "%s/home", w);
    snprintf(cmd, sizeof(cmd),
             "set -e; cd '%s'; mkdir -p cloud/Metadata/a/b cloud/Logs 'cloud/Media/x y'; "
             "echo one >cloud/Metadata/a/b/Info.xml; seq 1 3000 >cloud/Metadata/a/big.txt; "
             "echo p >cloud/Preferences.xml; echo l >cloud/Logs/s.log; "
             "printf 'z%%.0s' $(seq 1 200) >'cloud/Media/x y/t.bif'; "
             "ln -s ../Preferences.xml cloud/Logs/link; ln cloud/Preferences.xml cloud/hard; "
             "cp -a cloud home; rm 'home/Media/x y/t.bif'; seq 1 2990 >home/Metadata/a/big.txt",
             w);
    sh(cmd);
    pb_fingerprint_options fo = PB_FINGERPRINT_OPTIONS_INIT;
    pb_fingerprint_result r;
    snprintf(state, sizeof(state), "%s/cloud.state", w);
    fo.state_dir = state;
    if (pb_fingerprint_run(&r, cloud, &fo, &e) != 0)
        die("fingerprint", &e);
    put_file("manifest", "small.manifest", r.manifest_path);
    uint64_t n = 0, listed = 0, nwanted = 0;
    snprintf(list, sizeof(list), "%s/list", w);
    if (pb_run__list_compact(&n, r.manifest_path, list, &e) != 0)
        die("list", &e);
    put_file("list", "small.list", list);
    /* the home's answer to the cloud's manifest and to the wanted text list */
    pb_fingerprint_lookup *hl = NULL;
    uint64_t links = 0;
    snprintf(state, sizeof(state), "%s/home.state", w);
    if (pb_fingerprint_lookup_open(&hl, home, state, &e) != 0)
        die("lookup home", &e);
    snprintf(wanted, sizeof(wanted), "%s/wanted", w);
    if (pb_run__list_wanted(&listed, &nwanted, &links, list, hl, wanted, &e) != 0 ||
        pb_fingerprint_lookup_close(hl, &e) != 0)
        die("wanted", &e);
    pb_answer_options ao = PB_ANSWER_OPTIONS_INIT;
    pb_export_stats st;
    ao.state_dir = state;
    ao.whole_below = 64; /* signatures for the changed file */
    snprintf(ans, sizeof(ans), "%s/answer", w);
    if (pb_export_answer(&st, home, r.manifest_path, ans, &ao, &e) != 0)
        die("answer", &e);
    put_file("answer", "manifest.answer", ans);
    if (pb_export_answer(&st, home, wanted, ans, &ao, &e) != 0)
        die("answer wanted", &e);
    put_file("answer", "wanted.answer", ans);
}

static int sink_file(void *payload, const void *data, size_t n, pb_error *err)
{
    (void)err;
    return fwrite(data, 1, n, payload) == n ? 0 : PB_EIO;
}

/* A small mkplex library the cloud analysed: the changeset and the solid bundle. */
static void seeds_library(const char *w, const char *mkplex)
{
    char cmd[16384], base[4200], cloud[4200], home[4200], solid[4200], bundle[4200];
    char bdb[4400], cdb[4400], bb[4400], cb[4400], cs[4400];
    pb_error e = PB_ERROR_INIT;
    snprintf(base, sizeof(base), "%s/lib-base", w);
    snprintf(cloud, sizeof(cloud), "%s/lib-cloud", w);
    snprintf(home, sizeof(home), "%s/lib-home", w);
    snprintf(cdb, sizeof(cdb), "%s/%s", cloud, PB_PLEX_DB_REL);
    snprintf(cmd, sizeof(cmd),
             "set -e; '%s' init --dir '%s' --movies 3 --shows 1 --seasons 1 --episodes 2 "
             "--artists 1 --albums 1 --tracks 2 --photos 1 --seed 1 >/dev/null; cp -a '%s' '%s'; "
             "cp -a '%s' '%s'; '%s' analyze --dir '%s' --seed 7 --new-movies 1 --new-episodes 1 "
             "--new-tracks 1 --analyze-pct 50 --regen 1 --retitle 1 --delete 1 >/dev/null",
             mkplex, base, base, cloud, base, home, mkplex, cloud);
    sh(cmd);
    snprintf(bdb, sizeof(bdb), "%s/%s", base, PB_PLEX_DB_REL);
    snprintf(bb, sizeof(bb), "%s/%s", base, PB_PLEX_BLOBS_REL);
    snprintf(cb, sizeof(cb), "%s/%s", cloud, PB_PLEX_BLOBS_REL);
    /* the main changeset */
    snprintf(cs, sizeof(cs), "%s/main.changeset", w);
    FILE *f = fopen(cs, "wb");
    pb_diff_options dopt;
    pb_diff_stats ds;
    pb_diff_options_init(&dopt);
    if (!f || pb_sqldiff_diff(&ds, bdb, cdb, &dopt, sink_file, f, &e) != 0 || fclose(f) != 0)
        die("diff", &e);
    put_file("changeset", "main.changeset", cs);
    /* the bundle's solid form */
    pb_export_options o;
    pb_export_stats st;
    pb_export_options_init(&o);
    snprintf(solid, sizeof(solid), "%s/bundle.solid", w);
    snprintf(bundle, sizeof(bundle), "%s/bundle", w);
    o.cloud_dir = cloud;
    o.base_db = bdb;
    o.base_blobs = bb;
    o.home_dir = home;
    o.work_dir = w;
    o.zstd_level = 1;
    o.solid = solid;
    o.solid_level = 1;
    (void)cb;
    if (pb_export_build(&st, bundle, &o, &e) != 0)
        die("export", &e);
    put_file("solid", "small.solid", solid);
}

/* The frames of a conversation, as the agent and the home write them. */
static void seeds_frames(const char *w)
{
    char path[4200], data[4200];
    pb_error e = PB_ERROR_INIT;
    pb_channel *ch = NULL;
    pb_frame_io io;
    snprintf(path, sizeof(path), "%s/frames", w);
    snprintf(data, sizeof(data), "%s/data", w);
    FILE *d = fopen(data, "wb");
    if (!d)
        die(data, NULL);
    for (int i = 0; i < 300; i++)
        fprintf(d, "Metadata/Movies/%d/Info.xml\n", i);
    fclose(d);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || pb_channel_fd_new(&ch, -1, fd, 1, &e) != 0 ||
        pb_frame_io_init(&io, ch, 0, &e) != 0)
        die("channel", &e);
    io.types = &pb_protocol_types;
    json_t *hello = json_pack("{s:i, s:s, s:s, s:s}", "protocol", pb_protocol_types.version,
                              "software", "plexburst", "version", "0.1.0", "role", "agent");
    json_t *log = json_pack("{s:s, s:s}", "level", "info", "text", "runner: \"analyze\" started");
    json_t *prog = json_pack("{s:s, s:I, s:I}", "what", "export", "done", 10, "total", 400);
    json_t *res =
        json_pack("{s:s, s:b, s:i, s:f}", "step", "run", "ok", 1, "status", 0, "ms", 1234.5);
    if (pb_frame_write_json(&io, PB_FRAME_HELLO, hello, &e) != 0 ||
        pb_frame_write_json(&io, PB_MSG_LOG, log, &e) != 0 ||
        pb_frame_write_json(&io, PB_MSG_PROGRESS, prog, &e) != 0 ||
        pb_frame_write_json(&io, PB_MSG_RESULT, res, &e) != 0 ||
        pb_frame_send_file(&io, PB_MSG_LIST_DATA, PB_MSG_LIST_END, data, NULL, NULL, NULL, &e) !=
            0 ||
        pb_frame_write_error(&io, PB_ECORRUPT, "bundle: record 3 truncated", &e) != 0 ||
        pb_frame_write(&io, PB_MSG_BYE, "{}", 2, &e) != 0)
        die("frames", &e);
    json_decref(hello);
    json_decref(log);
    json_decref(prog);
    json_decref(res);
    pb_frame_io_dispose(&io);
    pb_channel_free(ch);
    put_file("frame", "conversation.frames", path);
}

/* S3 bodies (ListObjectsV2 pages, an error, an upload) and the settings files. */
static void seeds_text(void)
{
    static const char list1[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult "
        "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>plexburst</Name><Prefix>home/"
        "</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>"
        "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</"
        "NextContinuationToken><Contents><Key>home/baseline/0123/main.db.zst</Key><LastModified>"
        "2026-12-07T03:00:01.123Z</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;"
        "</ETag><Size>1048576</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>"
        "home/runs/a &amp; b.json</Key><LastModified>2026-12-07T03:00:02Z</LastModified><Size>0"
        "</Size></Contents></ListBucketResult>";
    static const char list2[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult><Name>b</Name><KeyCount>0"
        "</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>";
    static const char error[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The "
        "specified key does not exist.</Message><Key>home/x</Key><RequestId>tx0001</RequestId>"
        "</Error>";
    static const char upload[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult><Bucket>b"
        "</Bucket><Key>home/bundle</Key><UploadId>2~iCw_lDY8VoRl2Ym</UploadId>"
        "</InitiateMultipartUploadResult>";
    put("s3xml", "list-page1.xml", list1, sizeof(list1) - 1);
    put("s3xml", "list-empty.xml", list2, sizeof(list2) - 1);
    put("s3xml", "error.xml", error, sizeof(error) - 1);
    put("s3xml", "upload.xml", upload, sizeof(upload) - 1);
    /* settings: first byte 0 .env, 1 plex_libraries.json, 2 path_mappings.json */
    static const char env[] = "\0# plexburst settings\nPLEXBURST_PLEX_DIR=/var/lib/plexmediaserver/"
                              "Library/Application Support/Plex Media Server\n"
                              "PLEXBURST_MAX_DELETE_PCT=5\nexport PLEXBURST_STORE='s3://bucket/"
                              "home'\nPLEXBURST_RUNNER=\"mkplex analyze --dir {plex_dir}\" # c\n";
    static const char libs[] =
        "\1{\"libraries\": [{\"name\": \"Movies\", \"type\": \"movie\", \"locations\": "
        "[\"/data/movies\", \"/data/more movies\"], \"agent\": \"tv.plex.agents.movie\", "
        "\"scanner\": \"Plex Movie\", \"language\": \"en-US\"}, {\"name\": \"Music\", \"type\": "
        "\"artist\", \"location\": \"/data/music\"}]}";
    static const char map[] = "\2{\"mappings\": {\"/cloud/media\": \"/home/media\", \"/mnt/a b/\": "
                              "\"/srv/c%d\", \"/\": \"/root\"}}";
    put("settings", "dotenv", env, sizeof(env) - 1);
    put("settings", "plex_libraries", libs, sizeof(libs) - 1);
    put("settings", "path_mappings", map, sizeof(map) - 1);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_seeds MKPLEX CORPUS-DIR\n");
        return 2;
    }
    out_root = argv[2];
    const char *w = fuzz_dir();
    seeds_tree(w);
    seeds_library(w, argv[1]);
    seeds_frames(w);
    seeds_text();
    return 0;
}
