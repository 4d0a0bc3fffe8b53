/*
 * test_ssh.c: the SSH transport (transfer/ssh.h, channel_ssh.c) against a REAL OpenSSH server
 * on 127.0.0.1, started here by scripts/ssh-test-server (generated host and client keys in a
 * scratch dir; the test skips with exit 77 only when sshd cannot run at all).
 * Covers: URL parsing; host keys (known plain and hashed entries, a changed key refused with
 * the fingerprint, an unknown key refused without TOFU and recorded with it, pinned keys);
 * authentication (ed25519 with and without passphrase, a wrong passphrase, an RSA-only key
 * with the rsa-sha2 message, the SSH agent); remote commands; the exec channel (a `cat` echo of
 * random data, stderr and exit status, the agent's HELLO); SFTP put/get byte for byte with
 * resume from an offset; the agent install; a connection cut mid-transfer (the per-connection
 * sshd processes killed) reconnected and resumed; a frozen peer detected by the keepalive;
 * `plexburst sync --cloud ssh://...` end to end, and with the link cut during the analysis
 * (reconnected, the runner re-attached and run once), and with an S3 store (settings sent to
 * the agent in PREPARE's s3_env, no secret in the logs).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"
#include "plexburst/plex.h"
#include "ssh.h"
#include "testutil.h"
#include "transfer_util.h"
#include "transport_config.h"

static char T[1024]; /* the server's directory (keys, config, logs) */
static char W[1024]; /* scratch files of the tests */
static int port;
static pid_t sshd_pid;
static char host_fp[128];  /* SHA256:... of the server's key */
static char other_fp[128]; /* SHA256:... of a key the server does not have */
static char logbuf[8192];  /* lines of the log hook */

static const char *tpath(const char *name)
{
    static char buf[8][PATH_MAX];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, PATH_MAX, "%s/%s", T, name);
    return p;
}

static const char *wpath(const char *name)
{
    static char buf[8][PATH_MAX];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, PATH_MAX, "%s/%s", W, name);
    return p;
}

/* With PB_TEST_VERBOSE set, shows the messages the assertions look at. */
static void show(const char *what, const char *msg)
{
    if (getenv("PB_TEST_VERBOSE"))
        print_message("  %s: %s\n", what, msg);
}

/* Connecting with O is refused (PB_EAUTH, no session); the message, shown under WHAT, in *err. */
static void refused(pb_ssh_options *o, const char *what, pb_error *err)
{
    pb_ssh *s = NULL;
    pb_error_clear(err);
    assert_int_equal(pb_ssh_connect(&s, o, err), PB_EAUTH);
    assert_null(s);
    show(what, err->msg);
}

/* Connecting with O succeeds (the session is closed again). */
static void connects(pb_ssh_options *o)
{
    pb_ssh *s = NULL;
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_ssh_connect(&s, o, &err), 0);
    pb_ssh_free(s);
}

static void on_log(void *payload, const char *line)
{
    (void)payload;
    size_t n = strlen(logbuf);
    snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", line);
}

static const char *no_settings(void *payload, const char *key)
{
    (void)payload;
    (void)key;
    return NULL;
}

/* Session options as a run makes them (the engine names the settings in messages), then the
 * test's own values. */
static void opts(pb_ssh_options *o, const char *key, const char *known_hosts)
{
    pb_ssh_options_init(o);
    assert_int_equal(pb_transport_config_ssh(o, NULL, no_settings, NULL, NULL), 0);
    o->host = "127.0.0.1";
    o->port = port;
    o->user = "root";
    o->key_file = key ? key : tpath("client_ed25519");
    o->known_hosts = known_hosts ? known_hosts : tpath("known_hosts");
    o->use_agent = -1;
    o->connect_timeout_ms = 10000;
    o->reconnect_backoff_ms = 100;
    o->log = on_log;
}

/* A session with the default options (opts into *o, which the session may keep using). */
static pb_ssh *connect_default(pb_ssh_options *o)
{
    pb_ssh *s = NULL;
    pb_error err = PB_ERROR_INIT;
    opts(o, NULL, NULL);
    assert_int_equal(pb_ssh_connect(&s, o, &err), 0);
    return s;
}

static void make_file(const char *path, size_t n, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    static unsigned char chunk[65536];
    while (n) {
        size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
        for (size_t i = 0; i < k; i += 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            memcpy(chunk + i, &x, k - i < 8 ? k - i : 8);
        }
        assert_int_equal(fwrite(chunk, 1, k, f), k);
        n -= k;
    }
    fclose(f);
}

/* The files of a transfer case of N MiB: srcN (made here, seed N), and the paths remoteN (the
 * server's side) and backN (fetched back). In wpath's slots: valid for its next five calls. */
typedef struct xfer_files {
    const char *src, *remote, *back;
    size_t size;
} xfer_files;

static xfer_files make_xfer_files(unsigned n)
{
    char name[3][32];
    snprintf(name[0], sizeof(name[0]), "src%u", n);
    snprintf(name[1], sizeof(name[1]), "remote%u", n);
    snprintf(name[2], sizeof(name[2]), "back%u", n);
    xfer_files f = {wpath(name[0]), wpath(name[1]), wpath(name[2]), (size_t)n << 20};
    make_file(f.src, f.size, n);
    return f;
}

static int same_file(const char *a, const char *b)
{
    return tu_sh("cmp -s '%s' '%s'", a, b) == 0;
}

static off_t file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? st.st_size : -1;
}

/* The SHA256 fingerprint of a public key file, as ssh-keygen -l prints it. */
static void fingerprint(char *out, size_t cap, const char *pub)
{
    char line[512];
    assert_int_equal(tu_sh_out(line, sizeof(line), "ssh-keygen -lf '%s'", pub), 0);
    char *p = strstr(line, "SHA256:");
    assert_non_null(p);
    size_t n = strcspn(p, " \n");
    snprintf(out, cap, "%.*s", (int)n, p);
}

/* Every process below the listening sshd: one set per open connection. */
static int connection_pids(pid_t *pids, int max)
{
    int n = 0;
    pid_t frontier[64];
    int nf = 1;
    frontier[0] = sshd_pid;
    while (nf > 0 && n < max) {
        pid_t parent = frontier[--nf];
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d)) && n < max) {
            pid_t pid = (pid_t)atoi(e->d_name);
            if (pid <= 0)
                continue;
            char path[64], stat[512];
            snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
            FILE *f = fopen(path, "r");
            if (!f)
                continue;
            size_t k = fread(stat, 1, sizeof(stat) - 1, f);
            fclose(f);
            stat[k] = '\0';
            char *rp = strrchr(stat, ')');
            int ppid = 0;
            if (rp && sscanf(rp + 2, "%*c %d", &ppid) == 1 && ppid == parent) {
                pids[n++] = pid;
                if (nf < 64)
                    frontier[nf++] = pid;
            }
        }
        if (d)
            closedir(d);
    }
    return n;
}

static int signal_connections(int sig)
{
    pid_t pids[64];
    int n = connection_pids(pids, 64);
    for (int i = 0; i < n; i++)
        kill(pids[i], sig);
    return n;
}

static int setup(void **state)
{
    (void)state;
    snprintf(T, sizeof(T), "%s", tu_tmpdir("sshd"));
    snprintf(W, sizeof(W), "%s", tu_tmpdir("ssh"));
    int rc = xu_sshd_start(&port, T, tpath("start.log"));
    xu_skip_if_absent(rc, "sshd cannot run here", tpath("start.log"));
    if (rc != 0)
        return -1;
    char pid[32];
    tu_sh_out(pid, sizeof(pid), "cat '%s/sshd.pid'", T);
    sshd_pid = (pid_t)atoi(pid);
    fingerprint(host_fp, sizeof(host_fp), tpath("host_ed25519.pub"));
    fingerprint(other_fp, sizeof(other_fp), tpath("other_host_ed25519.pub"));
    /* No stray agent, and no real home: defaults land in the scratch dir. */
    unsetenv("SSH_AUTH_SOCK");
    char home[PATH_MAX];
    snprintf(home, sizeof(home), "%s/home", W);
    mkdir(home, 0700);
    setenv("HOME", home, 1);
    return port > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    xu_sshd_stop(T);
    tu_sh("rm -rf '%s' '%s'", T, W);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */

/* Sanitizer builds: libssh2 1.10 frees an SFTP handle only when the server answers its close,
 * so a transfer cut by a lost connection leaves that handle's buffers behind (docs/ssh.md,
 * bounded per reconnection). Full stacks are needed to name the libssh2 calls. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "fast_unwind_on_malloc=0";
}
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libssh2_sftp_write\nleak:libssh2_sftp_read\nleak:libssh2_sftp_open_ex\n";
}

static void test_url(void **state)
{
    (void)state;
    pb_ssh_target t;
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_ssh_url_parse(&t, "ssh://root@127.0.0.1:2222/srv/pb/", &err), 0);
    assert_string_equal(t.user, "root");
    assert_string_equal(t.host, "127.0.0.1");
    assert_int_equal(t.port, 2222);
    assert_string_equal(t.dir, "/srv/pb");
    assert_int_equal(pb_ssh_url_parse(&t, "ssh://example.org", &err), 0);
    assert_string_equal(t.user, "");
    assert_int_equal(t.port, 22);
    assert_string_equal(t.dir, "");
    assert_int_equal(pb_ssh_url_parse(&t, "ssh://u@[::1]:22/~/cloud", &err), 0);
    assert_string_equal(t.host, "::1");
    assert_string_equal(t.dir, "cloud");
    assert_int_equal(pb_ssh_url_parse(&t, "ssh://host:99999", &err), PB_EINVALID);
    assert_int_equal(pb_ssh_url_parse(&t, "ssh:///dir", &err), PB_EINVALID);
    assert_int_equal(pb_ssh_url_parse(&t, "local:/x", &err), PB_EINVALID);

    /* configuration names */
    setenv("PLEXBURST_SSH_KEY", "/k", 1);
    setenv("PLEXBURST_SSH_TOFU", "1", 1);
    setenv("PLEXBURST_SSH_HOST_KEY", "SHA256:nope", 1);
    pb_ssh_options o;
    pb_ssh_options_init(&o);
    pb_error_clear(&err);
    assert_int_equal(pb_transport_config_ssh(&o, &t, NULL, NULL, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "PLEXBURST_SSH_HOST_KEY"));
    setenv("PLEXBURST_SSH_HOST_KEY", host_fp, 1);
    assert_int_equal(pb_transport_config_ssh(&o, &t, NULL, NULL, &err), 0);
    assert_string_equal(o.key_file, "/k");
    assert_int_equal(o.tofu, 1);
    assert_string_equal(o.host_key_pin, host_fp);
    unsetenv("PLEXBURST_SSH_KEY");
    unsetenv("PLEXBURST_SSH_TOFU");
    unsetenv("PLEXBURST_SSH_HOST_KEY");

    char q[64];
    assert_int_equal(pb_ssh_quote(q, sizeof(q), "a b'c"), 0);
    assert_string_equal(q, "'a b'\\''c'");
}

static void test_known_host(void **state)
{
    (void)state;
    pb_ssh_options o;
    pb_ssh *s = connect_default(&o);
    pb_error err = PB_ERROR_INIT;
    char want[200];
    snprintf(want, sizeof(want), "ssh-ed25519 %s", host_fp);
    assert_string_equal(pb_ssh_host_key(s), want);
    char out[256];
    int status = -1;
    assert_int_equal(pb_ssh_exec(s, "echo hello; cat; exit 3", "in", 2, out, sizeof(out), NULL, 0,
                                 &status, &err),
                     0);
    assert_string_equal(out, "hello\nin");
    assert_int_equal(status, 3);
    pb_ssh_free(s);

    /* hashed entries (ssh-keygen -H) */
    assert_int_equal(tu_sh("cp '%s' '%s' && ssh-keygen -q -H -f '%s' 2>/dev/null && "
                           "grep -q '^|1|' '%s'",
                           tpath("known_hosts"), wpath("kh_hashed"), wpath("kh_hashed"),
                           wpath("kh_hashed")),
                     0);
    opts(&o, NULL, wpath("kh_hashed"));
    connects(&o);

    /* the user's known_hosts, when asked */
    opts(&o, NULL, wpath("kh_empty_none"));
    o.use_user_known_hosts = 1;
    o.user_known_hosts = tpath("known_hosts");
    connects(&o);
}

static void test_changed_host_key(void **state)
{
    (void)state;
    /* the same name with another key: refused, whatever TOFU says */
    assert_int_equal(tu_sh("printf '[127.0.0.1]:%d %%s\\n' \"$(cut -d' ' -f1-2 '%s')\" > '%s'",
                           port, tpath("other_host_ed25519.pub"), wpath("kh_changed")),
                     0);
    for (int hashed = 0; hashed < 2; hashed++) {
        if (hashed)
            assert_int_equal(tu_sh("ssh-keygen -q -H -f '%s' 2>/dev/null", wpath("kh_changed")), 0);
        pb_ssh_options o;
        pb_error err = PB_ERROR_INIT;
        opts(&o, NULL, wpath("kh_changed"));
        o.tofu = 1;
        refused(&o, "changed", &err);
        assert_non_null(strstr(err.msg, "CHANGED"));
        assert_non_null(strstr(err.msg, host_fp));
    }
}

static void test_unknown_host_key(void **state)
{
    (void)state;
    pb_ssh_options o;
    pb_error err = PB_ERROR_INIT;
    const char *kh = wpath("sub/dir/known_hosts"); /* created on TOFU */
    opts(&o, NULL, kh);
    refused(&o, "unknown", &err);
    assert_non_null(strstr(err.msg, "unknown host key"));
    assert_non_null(strstr(err.msg, host_fp));
    assert_non_null(strstr(err.msg, "PLEXBURST_SSH_TOFU"));
    assert_int_equal(file_size(kh), -1);

    pb_error_clear(&err);
    logbuf[0] = '\0';
    o.tofu = 1;
    connects(&o);
    assert_non_null(strstr(logbuf, "trust on first use"));
    char line[1024];
    assert_int_equal(tu_sh_out(line, sizeof(line), "cat '%s'", kh), 0);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "[127.0.0.1]:%d ssh-ed25519 ", port);
    assert_memory_equal(line, prefix, strlen(prefix));
    struct stat st;
    assert_int_equal(stat(kh, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* OpenSSH agrees with the line written */
    assert_int_equal(tu_sh("ssh -i '%s' -p %d -o UserKnownHostsFile='%s' -o BatchMode=yes "
                           "-o StrictHostKeyChecking=yes root@127.0.0.1 true 2>/dev/null",
                           tpath("client_ed25519"), port, kh),
                     0);
    /* now known: no TOFU needed */
    o.tofu = 0;
    connects(&o);

    /* the default file: ~/.config/plexburst/known_hosts */
    opts(&o, NULL, NULL);
    o.known_hosts = NULL;
    o.tofu = 1;
    connects(&o);
    char def[PATH_MAX];
    snprintf(def, sizeof(def), "%s/.config/plexburst/known_hosts", getenv("HOME"));
    assert_true(file_size(def) > 0);
}

static void test_pinned_host_key(void **state)
{
    (void)state;
    pb_ssh_options o;
    pb_error err = PB_ERROR_INIT;
    opts(&o, NULL, wpath("kh_none")); /* the pin alone decides */
    o.host_key_pin = host_fp;
    connects(&o);
    opts(&o, NULL, NULL); /* a known key does not override a wrong pin */
    o.host_key_pin = other_fp;
    refused(&o, "pinned", &err);
    assert_non_null(strstr(err.msg, "pinned"));
    assert_non_null(strstr(err.msg, host_fp));
    assert_non_null(strstr(err.msg, other_fp));
}

static void test_auth(void **state)
{
    (void)state;
    pb_ssh_options o;
    pb_error err = PB_ERROR_INIT;
    char pass[256];
    assert_int_equal(tu_sh_out(pass, sizeof(pass), "cat '%s'", tpath("passphrase")), 0);
    pass[strcspn(pass, "\n")] = '\0';

    /* ed25519 with its passphrase */
    opts(&o, tpath("client_ed25519_pass"), NULL);
    o.key_passphrase = pass;
    connects(&o);

    /* a wrong and a missing passphrase: refused, and the secret never shown */
    o.key_passphrase = "wrong passphrase";
    refused(&o, "wrong passphrase", &err);
    assert_null(strstr(err.msg, "wrong passphrase"));
    assert_non_null(strstr(err.msg, "passphrase"));
    pb_error_clear(&err);
    o.key_passphrase = NULL;
    refused(&o, "missing passphrase", &err);
    assert_null(strstr(err.msg, pass));

    /* a key the server does not know */
    pb_error_clear(&err);
    opts(&o, tpath("other_host_ed25519"), NULL);
    refused(&o, "unknown key", &err);
    assert_non_null(strstr(err.msg, "refused"));
    assert_null(strstr(err.msg, "rsa-sha2"));

    /* RSA: authorized on the server, but libssh2 1.10 signs only ssh-rsa (SHA-1) */
    pb_error_clear(&err);
    opts(&o, tpath("client_rsa"), NULL);
    refused(&o, "rsa", &err);
    assert_non_null(
        strstr(err.msg, "RSA keys need rsa-sha2, which libssh2 1.10 lacks: use an ed25519 key"));

    /* no key at all */
    pb_error_clear(&err);
    opts(&o, NULL, NULL);
    o.key_file = NULL;
    refused(&o, "no key", &err);
    assert_non_null(strstr(err.msg, "PLEXBURST_SSH_KEY"));
}

static void test_agent_auth(void **state)
{
    (void)state;
    char sock[PATH_MAX], pid[64];
    snprintf(sock, sizeof(sock), "%s/agent.sock", W);
    if (tu_sh("command -v ssh-agent >/dev/null && command -v ssh-add >/dev/null") != 0) {
        print_message("ssh-agent not installed: agent authentication not covered\n");
        return;
    }
    assert_int_equal(
        tu_sh_out(pid, sizeof(pid),
                  "ssh-agent -a '%s' -s | sed -n 's/^SSH_AGENT_PID=\\([0-9]*\\).*/\\1/p'", sock),
        0);
    assert_int_equal(
        tu_sh("SSH_AUTH_SOCK='%s' ssh-add -q '%s' 2>/dev/null", sock, tpath("client_ed25519")), 0);
    setenv("SSH_AUTH_SOCK", sock, 1);
    pb_ssh_options o;
    pb_ssh *s = NULL;
    pb_error err = PB_ERROR_INIT;
    opts(&o, NULL, NULL);
    o.key_file = NULL;
    o.use_agent = 0;
    int rc = pb_ssh_connect(&s, &o, &err);
    pb_ssh_free(s);
    unsetenv("SSH_AUTH_SOCK");
    if (atoi(pid) > 0)
        kill((pid_t)atoi(pid), SIGTERM);
    assert_int_equal(rc, 0);
}

/* The exec channel: `cat` echoes 8 MiB of random data in 64 KiB steps; stderr and status. */
static void test_channel(void **state)
{
    (void)state;
    pb_ssh_options o;
    pb_ssh *s = connect_default(&o);
    pb_channel *ch = NULL;
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_channel_ssh_new(&ch, s, 1, "cat; exit 7", 10000, &err), 0);
    assert_string_equal(ch->ops->kind, "ssh");
    assert_ptr_equal(pb_channel_ssh_session(ch), s);
    size_t total = 8u << 20, step = 64u << 10;
    unsigned char *src = malloc(total), *back = malloc(total);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < total; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        src[i] = (unsigned char)x;
    }
    size_t rd = 0;
    for (size_t wr = 0; wr < total; wr += step) {
        assert_int_equal(pb_channel_write(ch, src + wr, step, &err), 0);
        while (rd < wr + step) {
            size_t got = 0;
            assert_int_equal(pb_channel_read(ch, back + rd, total - rd, &got, &err), 0);
            assert_true(got > 0);
            rd += got;
        }
    }
    assert_memory_equal(src, back, total);
    assert_int_equal(ch->bytes_in, total);
    int status = -1;
    assert_int_equal(pb_channel_close(ch, &status, &err), 0);
    assert_int_equal(status, 7);
    pb_channel_free(ch);
    free(src);
    free(back);

    /* stderr kept and logged; end of stream; status */
    assert_int_equal(pb_ssh_connect(&s, &o, &err), 0);
    logbuf[0] = '\0';
    assert_int_equal(pb_channel_ssh_new(&ch, s, 1, "echo oops >&2; echo out; exit 5", 0, &err), 0);
    char buf[64];
    size_t got = 0;
    assert_int_equal(pb_channel_read_full(ch, buf, 4, &got, 0, &err), 0);
    assert_memory_equal(buf, "out\n", 4);
    assert_int_equal(pb_channel_read(ch, buf, sizeof(buf), &got, &err), 0);
    assert_int_equal(got, 0);
    assert_non_null(strstr(pb_channel_ssh_stderr(ch), "oops"));
    assert_non_null(strstr(logbuf, "remote: oops"));
    assert_int_equal(pb_channel_close(ch, &status, &err), 0);
    assert_int_equal(status, 5);
    pb_channel_free(ch);
}

static int cancel_now(void *p)
{
    return *(int *)p;
}

/* Cancellation of a read that waits for a silent remote. */
static void test_channel_cancel(void **state)
{
    (void)state;
    pb_ssh_options o;
    pb_ssh *s = connect_default(&o);
    pb_channel *ch = NULL;
    pb_error err = PB_ERROR_INIT;
    /* a close timeout far above the bound below: a free that waited for it would fail even on a
     * loaded machine, and one that ends `cat` with EOF passes with room to spare */
    assert_int_equal(pb_channel_ssh_new(&ch, s, 1, "cat >/dev/null", 30000, &err), 0);
    int flag = 1;
    pb_channel_set_cancel(ch, cancel_now, &flag);
    char buf[16];
    size_t got;
    assert_int_equal(pb_channel_read(ch, buf, sizeof(buf), &got, &err), PB_ECANCELLED);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pb_channel_free(ch); /* EOF, then close: the remote `cat` ends at once (not after 30 s) */
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 10000);
}

/* HELLO with the agent at the other end of CH (its answer's KEY is WANT), then BYE both ways. */
static void hello_bye(pb_channel *ch, const char *key, const char *want)
{
    pb_error err = PB_ERROR_INIT;
    pb_frame_io io;
    assert_int_equal(pb_protocol_io_init(&io, ch, 0, &err), 0);
    json_t *peer = NULL;
    int rc = pb_frame_hello(&io, "home", pb_version(), NULL, &peer, &err);
    if (rc)
        print_message("hello: %s (stderr: %s)\n", err.msg, pb_channel_ssh_stderr(ch));
    assert_int_equal(rc, 0);
    assert_string_equal(json_string_value(json_object_get(peer, key)), want);
    json_decref(peer);
    assert_int_equal(pb_frame_write(&io, PB_MSG_BYE, NULL, 0, &err), 0);
    pb_frame f;
    assert_int_equal(pb_frame_read(&io, &f, &err), 0);
    assert_int_equal(f.type, PB_MSG_BYE);
    pb_frame_io_dispose(&io);
}

/* The framed protocol's HELLO with `plexburst agent` over the exec channel. */
static void test_agent_hello(void **state)
{
    (void)state;
    const char *prog = tu_build_path("plexburst");
    if (access(prog, X_OK) != 0 || tu_sh("'%s' agent --help >/dev/null 2>&1", prog) != 0) {
        print_message("plexburst agent not built: HELLO over SSH not covered\n");
        return;
    }
    pb_ssh_options o;
    pb_ssh *s = connect_default(&o);
    pb_channel *ch = NULL;
    pb_error err = PB_ERROR_INIT;
    char cmd[3 * PATH_MAX], qp[PATH_MAX + 8], qd[PATH_MAX + 8];
    assert_int_equal(pb_ssh_quote(qp, sizeof(qp), prog), 0);
    assert_int_equal(pb_ssh_quote(qd, sizeof(qd), wpath("cloud")), 0);
    snprintf(cmd, sizeof(cmd), "exec %s agent --workdir %s", qp, qd);
    assert_int_equal(pb_channel_ssh_new(&ch, s, 1, cmd, 10000, &err), 0);
    hello_bye(ch, "role", "agent");
    int status = -1;
    assert_int_equal(pb_channel_close(ch, &status, &err), 0);
    assert_int_equal(status, 0);
    pb_channel_free(ch);
}

/* The configuration of pb_ssh_agent_channel, as a run passes it (engine/run/config.c's getter). */
static const char *test_config(void *payload, const char *key)
{
    (void)payload;
    if (!strcmp(key, "PLEXBURST_SSH_KEY"))
        return tpath("client_ed25519");
    if (!strcmp(key, "PLEXBURST_KNOWN_HOSTS"))
        return tpath("known_hosts");
    if (!strcmp(key, "PLEXBURST_SSH_AGENT"))
        return "0";
    return NULL;
}

/* What `--cloud ssh://` does: connect first (fail fast), then install + agent on that session;
 * after a cut, a new agent on a new connection (the run logic's resume primitive). */
static void test_agent_channel(void **state)
{
    (void)state;
    const char *prog = tu_build_path("plexburst");
    if (access(prog, X_OK) != 0 || tu_sh("'%s' agent --help >/dev/null 2>&1", prog) != 0) {
        print_message("plexburst agent not built: agent channel not covered\n");
        return;
    }
    char url[PATH_MAX + 64];
    snprintf(url, sizeof(url), "ssh://root@127.0.0.1:%d%s", port, wpath("acloud"));
    pb_ssh_agent_opts ao;
    pb_ssh_agent_opts_init(&ao);
    ao.url = url;
    ao.local_exe = prog;
    pb_error err = PB_ERROR_INIT;
    pb_ssh_options so = PB_SSH_OPTIONS_INIT;
    assert_int_equal(pb_transport_config_ssh(&so, NULL, test_config, NULL, &err), 0);
    ao.ssh = &so;
    ao.log = on_log;
    assert_int_equal(pb_ssh_agent_connect(&ao.session, &ao, &err), 0);
    assert_non_null(strstr(ao.host_key, host_fp));
    pb_channel *ch = NULL;
    int rc = pb_ssh_agent_channel(&ch, &ao, &err);
    if (rc)
        print_message("agent channel: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_null(ao.session);
    assert_int_equal(ao.install.installed, 1);
    assert_true(same_file(prog, wpath("acloud/bin/plexburst")));
    char real[PATH_MAX]; /* the workdir the agent reports */
    assert_non_null(realpath(wpath("acloud"), real));
    hello_bye(ch, "workdir", real);
    int status = -1;
    assert_int_equal(pb_channel_close(ch, &status, &err), 0);
    assert_int_equal(status, 0);

    /* the connection drops: a new agent on a new connection */
    assert_int_equal(pb_channel_ssh_reconnect(ch, &err), 0); /* a closed channel restarts too */
    assert_true(signal_connections(SIGKILL) > 0);
    char buf[8];
    size_t got = 0;
    rc = pb_channel_read(ch, buf, sizeof(buf), &got, &err);
    assert_true(rc == PB_ENET || (rc == 0 && got > 0)); /* the new agent's HELLO may be in */
    if (rc == 0) {
        rc = pb_channel_read(ch, buf, sizeof(buf), &got, &err);
        while (rc == 0 && got > 0)
            rc = pb_channel_read(ch, buf, sizeof(buf), &got, &err);
        assert_true(rc == PB_ENET || got == 0);
    }
    pb_error_clear(&err);
    assert_int_equal(pb_channel_ssh_reconnect(ch, &err), 0);
    hello_bye(ch, "workdir", real);
    assert_int_equal(pb_channel_close(ch, &status, &err), 0);
    assert_int_equal(status, 0);
    pb_channel_free(ch);

    /* a bad URL or configuration is refused before any connection */
    pb_ssh_agent_opts_init(&ao);
    ao.url = "ssh://";
    pb_error_clear(&err);
    assert_int_equal(pb_ssh_agent_channel(&ch, &ao, &err), PB_EINVALID);
}

static void test_sftp(void **state)
{
    (void)state;
    pb_ssh_options o;
    pb_ssh *s = connect_default(&o);
    pb_error err = PB_ERROR_INIT;
    xfer_files f = make_xfer_files(20);

    pb_ssh_xfer x = {PB_SSH_XFER_VERSION, 0, 0, 0, NULL, NULL, 0, 0, 0};
    assert_int_equal(pb_ssh_put_file(s, f.src, f.remote, &x, &err), 0);
    assert_true(same_file(f.src, f.remote));
    assert_int_equal(x.bytes_moved, f.size);
    struct stat st;
    assert_int_equal(stat(f.remote, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    uint64_t rs = 0;
    assert_int_equal(pb_ssh_stat_size(s, f.remote, &rs, &err), 0);
    assert_int_equal(rs, f.size);
    assert_int_equal(pb_ssh_get_file(s, f.remote, f.back, &x, &err), 0);
    assert_true(same_file(f.src, f.back));

    /* put resumed after 7 MB the remote already has */
    assert_int_equal(truncate(f.remote, 7000000), 0);
    x.resume = 1;
    assert_int_equal(pb_ssh_put_file(s, f.src, f.remote, &x, &err), 0);
    assert_int_equal(x.resumed_from, 7000000);
    assert_int_equal(x.bytes_moved, f.size - 7000000);
    assert_true(same_file(f.src, f.remote));
    /* a remote file longer than the local one is no prefix: written whole */
    assert_int_equal(tu_sh("head -c 100 /dev/zero >> '%s'", f.remote), 0);
    assert_int_equal(pb_ssh_put_file(s, f.src, f.remote, &x, &err), 0);
    assert_int_equal(x.resumed_from, 0);
    assert_true(same_file(f.src, f.remote));

    /* get resumed after 5 MB the local file already has */
    assert_int_equal(truncate(f.back, 5000000), 0);
    assert_int_equal(pb_ssh_get_file(s, f.remote, f.back, &x, &err), 0);
    assert_int_equal(x.resumed_from, 5000000);
    assert_int_equal(x.bytes_moved, f.size - 5000000);
    assert_true(same_file(f.src, f.back));
    /* small buffers, odd sizes, an empty file */
    make_file(f.src, 12345, 3);
    x.resume = 0;
    x.buffer = 30000;
    assert_int_equal(pb_ssh_put_file(s, f.src, f.remote, &x, &err), 0);
    assert_true(same_file(f.src, f.remote));
    assert_int_equal(pb_ssh_get_file(s, f.remote, f.back, &x, &err), 0);
    assert_true(same_file(f.src, f.back));
    make_file(f.src, 0, 3);
    assert_int_equal(pb_ssh_put_file(s, f.src, f.remote, &x, &err), 0);
    assert_int_equal(file_size(f.remote), 0);

    /* errors */
    assert_int_equal(pb_ssh_get_file(s, wpath("nope"), f.back, &x, &err), PB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no such file"));
    assert_int_equal(file_size(f.back), 12345); /* a missing remote leaves the local file alone */
    pb_error_clear(&err);
    assert_int_equal(pb_ssh_put_file(s, f.src, wpath("no/such/dir/f"), &x, &err), PB_ENOTFOUND);
    pb_error_clear(&err);
    assert_int_equal(pb_ssh_put_file(s, wpath("nope"), f.remote, &x, &err), PB_ENOTFOUND);
    assert_false(pb_ssh_lost(s));
    pb_ssh_free(s);
}

typedef struct cutter {
    uint64_t at;
    int done;
} cutter;

/* Progress hook that cuts the connection (kills its sshd processes) once past `at`. */
static int cut_once(const pb_progress *p, void *payload)
{
    cutter *c = payload;
    if (!c->done && p->bytes_done >= c->at) {
        c->done = signal_connections(SIGKILL);
        assert_true(c->done > 0);
    }
    return 0;
}

static void test_cut_and_resume(void **state)
{
    (void)state;
    pb_ssh_options o;
    pb_ssh *s = connect_default(&o);
    pb_error err = PB_ERROR_INIT;
    xfer_files f = make_xfer_files(64);

    logbuf[0] = '\0';
    cutter c = {16u << 20, 0};
    pb_ssh_xfer x = {PB_SSH_XFER_VERSION, 0, 0, 0, cut_once, &c, 0, 0, 0};
    int rc = pb_ssh_put_file(s, f.src, f.remote, &x, &err);
    if (rc)
        print_message("put: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_true(c.done > 0);
    assert_int_equal(x.reconnects, 1);
    assert_int_equal(pb_ssh_reconnects(s), 1);
    assert_true(same_file(f.src, f.remote));
    /* resumed, not restarted: at most the cut's in-flight window is sent twice */
    assert_true(x.bytes_moved < f.size + (8u << 20));
    show("log", logbuf);
    assert_non_null(strstr(logbuf, "reconnected"));

    c.done = 0;
    c.at = 40u << 20;
    rc = pb_ssh_get_file(s, f.remote, f.back, &x, &err);
    if (rc)
        print_message("get: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_true(c.done > 0);
    assert_int_equal(x.reconnects, 1);
    assert_true(same_file(f.src, f.back));
    assert_true(x.bytes_moved == f.size);

    /* the exec channel: lost, reconnected, and the command runs again */
    pb_channel *ch = NULL;
    assert_int_equal(pb_channel_ssh_new(&ch, s, 1, "cat", 5000, &err), 0);
    char buf[16];
    size_t got;
    assert_int_equal(pb_channel_write(ch, "ping", 4, &err), 0);
    assert_int_equal(pb_channel_read_full(ch, buf, 4, &got, 0, &err), 0);
    assert_true(signal_connections(SIGKILL) > 0);
    rc = pb_channel_write(ch, "more", 4, &err);
    if (rc == 0)
        rc = pb_channel_read(ch, buf, sizeof(buf), &got, &err);
    if (rc == 0 && got == 0)
        rc = PB_ENET; /* some kernels deliver the cut as an end of stream first */
    show("cut channel", err.msg);
    assert_int_equal(rc, PB_ENET);
    pb_error_clear(&err);
    assert_int_equal(pb_channel_ssh_reconnect(ch, &err), 0);
    assert_int_equal(pb_channel_write(ch, "pong", 4, &err), 0);
    assert_int_equal(pb_channel_read_full(ch, buf, 4, &got, 0, &err), 0);
    assert_memory_equal(buf, "pong", 4);
    pb_channel_free(ch);
}

/* A peer that stops answering (sshd frozen) is declared dead by the keepalive check. */
static void test_dead_peer(void **state)
{
    (void)state;
    pb_ssh_options o;
    pb_ssh *s = NULL;
    pb_channel *ch = NULL;
    pb_error err = PB_ERROR_INIT;
    opts(&o, NULL, NULL);
    o.keepalive_s = 1;
    o.keepalive_count = 2;
    assert_int_equal(pb_ssh_connect(&s, &o, &err), 0);
    assert_int_equal(pb_channel_ssh_new(&ch, s, 1, "sleep 20", 2000, &err), 0);
    /* alive but silent for 3 s: keepalives are answered, the read goes on waiting */
    int flag = 0;
    pb_channel_set_cancel(ch, cancel_now, &flag);
    assert_true(signal_connections(SIGSTOP) > 0);
    char buf[16];
    size_t got;
    double t0 = (double)time(NULL);
    int rc = pb_channel_read(ch, buf, sizeof(buf), &got, &err);
    double dt = (double)time(NULL) - t0;
    signal_connections(SIGCONT);
    signal_connections(SIGKILL);
    assert_int_equal(rc, PB_ENET);
    show("dead", err.msg);
    assert_non_null(strstr(err.msg, "no answer"));
    assert_true(dt >= 1 && dt <= 8);
    assert_true(pb_ssh_lost(s));
    pb_channel_free(ch);
}

static void test_install(void **state)
{
    (void)state;
    const char *exe = tu_build_path("plexburst");
    if (access(exe, X_OK) != 0) {
        print_message("plexburst not built: using /bin/true-like stand-in\n");
        return;
    }
    char ver[128];
    assert_int_equal(tu_sh_out(ver, sizeof(ver), "'%s' --version", exe), 0);
    pb_ssh_options o;
    pb_ssh *s = connect_default(&o);
    pb_error err = PB_ERROR_INIT;
    const char *target = wpath("remote-home/bin/plexburst");
    pb_ssh_install in;
    int rc = pb_ssh_agent_install(&in, s, exe, target, NULL, &err);
    if (rc)
        print_message("install: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(in.installed, 1);
    assert_string_equal(in.found, "");
    assert_true(same_file(exe, target));
    struct stat st;
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);
    /* the same build: nothing to do */
    assert_int_equal(pb_ssh_agent_install(&in, s, exe, target, NULL, &err), 0);
    assert_int_equal(in.installed, 0);
    ver[strcspn(ver, "\n")] = '\0';
    assert_string_equal(in.found, ver);
    /* another version there: replaced */
    assert_int_equal(tu_sh("printf '#!/bin/sh\\necho plexburst 0.0.1\\n' > '%s'", target), 0);
    assert_int_equal(pb_ssh_agent_install(&in, s, exe, target, NULL, &err), 0);
    assert_int_equal(in.installed, 1);
    assert_string_equal(in.found, "plexburst 0.0.1");
    assert_true(same_file(exe, target));
    assert_int_equal(tu_sh("ls -a '%s' | grep -q upload", wpath("remote-home/bin")), 1);
    /* a binary that does not run there is reported, not installed silently */
    assert_int_equal(tu_sh("printf '#!/bin/sh\\necho broken >&2; exit 127\\n' > '%s' && "
                           "chmod +x '%s'",
                           wpath("fake"), wpath("fake")),
                     0);
    assert_int_equal(pb_ssh_agent_install(&in, s, wpath("fake"), wpath("fakebin/pb"), NULL, &err),
                     PB_EREFUSED);
    show("broken install", err.msg);
    assert_non_null(strstr(err.msg, "broken"));
    pb_ssh_free(s);
}

/* `plexburst bootstrap` + `sync --cloud ssh://root@127.0.0.1:PORT/DIR` end to end: the agent
 * installed over SFTP and run over the exec channel; the home ends equal to an oracle. */
static int run_pb(const char *env, const char *args)
{
    int rc = tu_sh("cd '%s' && %s '%s' %s >>'%s' 2>&1", W, env, tu_build_path("plexburst"), args,
                   wpath("e2e.log"));
    if (rc != 0) {
        char tail[4096] = "";
        tu_sh_out(tail, sizeof(tail), "tail -c 3000 '%s'", wpath("e2e.log"));
        print_message("plexburst %.200s: exit %d\n%s\n", args, rc, tail);
    }
    return rc;
}

/* The places of an end to end under W/TAG (the home, its oracle, the cloud dir), and the settings
 * (VAR='value' ...) its runs get. */
typedef struct e2e {
    char dir[PATH_MAX], mk[PATH_MAX], home[PATH_MAX + 16], oracle[PATH_MAX + 16];
    char cloud[PATH_MAX + 64], env[4 * PATH_MAX + 1024];
} e2e;

/* The cloud is ssh:// to W/TAG/cloud, the store STORE (NULL: the directory W/TAG/store, which
 * both sides reach on this one machine); EXTRA is appended to the settings. */
static void e2e_init(e2e *e, const char *tag, const char *store, const char *extra)
{
    char sub[PATH_MAX + 16];
    snprintf(e->dir, sizeof(e->dir), "%s", wpath(tag));
    snprintf(e->mk, sizeof(e->mk), "%s", tu_build_path("mkplex"));
    snprintf(e->home, sizeof(e->home), "%s/home", e->dir);
    snprintf(e->oracle, sizeof(e->oracle), "%s/oracle", e->dir);
    snprintf(e->cloud, sizeof(e->cloud), "ssh://root@127.0.0.1:%d%s/cloud", port, e->dir);
    snprintf(sub, sizeof(sub), "%s/store", e->dir);
    snprintf(e->env, sizeof(e->env),
             "PLEXBURST_SSH_KEY='%s' PLEXBURST_KNOWN_HOSTS='%s' PLEXBURST_STORE='%s' "
             "PLEXBURST_CLOUD='%s'%s",
             tpath("client_ed25519"), tpath("known_hosts"), store ? store : sub, e->cloud,
             extra ? extra : "");
}

/* plexburst and mkplex are built (else the end to end, WHAT, is said not covered). */
static int tools_built(const char *what)
{
    if (access(tu_build_path("plexburst"), X_OK) == 0 && access(tu_build_path("mkplex"), X_OK) == 0)
        return 1;
    print_message("plexburst/mkplex not built: %s not covered\n", what);
    return 0;
}

/* The home and the oracle made alike (mkplex init, SEED), then `plexburst bootstrap` whose
 * runner does the same in the cloud. The bootstrap's exit status. */
static int e2e_bootstrap(const e2e *e, int seed)
{
    char init[64], args[16384];
    snprintf(init, sizeof(init), "init --scale tiny --seed %d", seed);
    assert_int_equal(tu_sh("mkdir -p '%s'", e->dir), 0);
    assert_int_equal(xu_mkplex_both(e->mk, e->home, e->oracle, init), 0);
    snprintf(args, sizeof(args),
             "bootstrap --plex-dir '%s' --runner \"'%s' init --dir {plex_dir} --scale tiny --seed "
             "%d\"",
             e->home, e->mk, seed);
    return run_pb(e->env, args);
}

/* New items on both sides (mkplex stream, SEED). */
static void e2e_stream(const e2e *e, int seed)
{
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "stream --seed %d", seed);
    assert_int_equal(xu_mkplex_both(e->mk, e->home, e->oracle, cmd), 0);
}

/* The oracle analysed here as the runner did in the cloud (SEED): the home equals it. */
static void e2e_assert_analyzed(const e2e *e, int seed)
{
    assert_int_equal(tu_sh("'%s' analyze --dir '%s' --seed %d >/dev/null", e->mk, e->oracle, seed),
                     0);
    xu_assert_same_library(e->home, e->oracle);
}

/* New items (STREAM_SEED), a sync whose runner analyses (ANALYZE_SEED), the home checked. */
static void e2e_sync_analyze(const e2e *e, int stream_seed, int analyze_seed)
{
    char args[16384];
    e2e_stream(e, stream_seed);
    snprintf(args, sizeof(args),
             "sync --plex-dir '%s' --runner \"'%s' analyze --dir {plex_dir} --seed %d\"", e->home,
             e->mk, analyze_seed);
    assert_int_equal(run_pb(e->env, args), 0);
    e2e_assert_analyzed(e, analyze_seed);
}

static void test_sync_e2e(void **state)
{
    (void)state;
    if (!tools_built("end to end"))
        return;
    const char *pb = tu_build_path("plexburst");
    e2e e;
    e2e_init(&e, "e2e", NULL, NULL);
    int rc = e2e_bootstrap(&e, 1);
    char log[8192] = "";
    tu_sh_out(log, sizeof(log), "cat '%s'", wpath("e2e.log"));
    if (rc != 0 && strstr(log, "not supported by this build")) {
        print_message("--cloud ssh:// not dispatched by the run logic: end to end not covered\n");
        return;
    }
    assert_int_equal(rc, 0);
    /* the agent was installed in the cloud dir and ran there */
    assert_int_equal(access(wpath("e2e/cloud/bin/plexburst"), X_OK), 0);
    assert_true(same_file(pb, wpath("e2e/cloud/bin/plexburst")));

    e2e_sync_analyze(&e, 101, 201);

    /* an unknown host key stops the run (when the agent starts), with the fingerprint */
    static char out[1 << 16];
    assert_int_not_equal(tu_sh_out(out, sizeof(out),
                                   "cd '%s' && %s PLEXBURST_KNOWN_HOSTS='%s' '%s' sync --plex-dir "
                                   "'%s' --runner true 2>&1",
                                   W, e.env, wpath("e2e/kh-empty"), pb, e.home),
                         0);
    char *msg = strstr(out, "unknown host key");
    assert_non_null(msg);
    show("sync, unknown host", msg);
    assert_non_null(strstr(out, host_fp));
}

/* Kills the per-connection sshd processes only (their children, the agent and a runner it
 * detached, live on as they would when a link drops). How many were signalled. */
static int kill_sshd_connections(void)
{
    pid_t pids[64];
    int n = connection_pids(pids, 64), k = 0;
    for (int i = 0; i < n; i++) {
        char path[64], comm[64] = "";
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pids[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (!fgets(comm, sizeof(comm), f))
            comm[0] = '\0';
        fclose(f);
        if (strncmp(comm, "sshd", 4) == 0 && kill(pids[i], SIGKILL) == 0)
            k++;
    }
    return k;
}

/* A link cut during a long analysis: the sshd processes of the connection
 * are killed while the runner sleeps; the home reconnects, a new agent re-attaches to the
 * runner (which ran exactly once) and the sync completes equal to the oracle. */
static void test_sync_cut_analysis(void **state)
{
    (void)state;
    char args[16384], counter[PATH_MAX];
    if (access(wpath("e2e/cloud/bin/plexburst"), X_OK) != 0) {
        print_message("the ssh end to end did not run: the cut analysis not covered\n");
        return;
    }
    e2e e;
    e2e_init(&e, "e2e", NULL, NULL);
    snprintf(counter, sizeof(counter), "%s", wpath("e2e/runner-count"));
    unlink(counter);
    e2e_stream(&e, 102);
    snprintf(args, sizeof(args),
             "sync --plex-dir '%s' --runner \"echo run >> '%s'; sleep 4; '%s' analyze --dir "
             "{plex_dir} --seed 7\"",
             e.home, counter, e.mk);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(run_pb(e.env, args) == 0 ? 0 : 1);
    /* the runner started: cut the link while it sleeps */
    int waited = 0;
    struct timespec tick = {0, 100000000L}, second = {1, 0};
    while (access(counter, F_OK) != 0 && waited < 600) {
        nanosleep(&tick, NULL);
        waited++;
    }
    assert_true(waited < 600);
    nanosleep(&second, NULL);
    int killed = kill_sshd_connections();
    print_message("cut: %d sshd processes killed during the analysis\n", killed);
    assert_true(killed > 0);
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);

    char out[4096] = "";
    assert_int_equal(tu_sh_out(out, sizeof(out), "wc -l < '%s'", counter), 0);
    assert_int_equal(atoi(out), 1); /* the runner ran exactly once */
    assert_int_equal(tu_sh("grep -q '🔄' '%s'", wpath("e2e.log")), 0);
    e2e_assert_analyzed(&e, 7);
}

/* `sync --cloud ssh://... --store s3://...` end to end against the loopback sshd and a local
 * signature-checking S3 server (scripts/s3-test-server): the S3 settings are set for the home
 * only (sshd forwards no environment to the agent), the home sends them in PREPARE's `s3_env`;
 * the home ends equal to an oracle and no secret appears in the logs. */
#define S3_AK "PBTESTKEY0001"
#define S3_SK "pbtest-secret-0001"
static void test_sync_s3_e2e(void **state)
{
    (void)state;
    if (!tools_built("ssh + s3 end to end"))
        return;
    char s3w[PATH_MAX], s3env[512];
    snprintf(s3w, sizeof(s3w), "%s", wpath("s3server"));
    int s3port = 0;
    int rc = xu_s3_start(&s3port, s3w, wpath("s3-setup.log"));
    if (rc == 77) {
        print_message("no S3 test server: ssh + s3 end to end not covered\n");
        return;
    }
    assert_int_equal(rc, 0);
    assert_true(s3port > 0);
    /* none of the S3 settings in this process (whose environment sshd does not pass on) */
    for (const char *const *k = pb_transport_config_s3_keys; *k; k++)
        unsetenv(*k);

    snprintf(s3env, sizeof(s3env),
             " PLEXBURST_S3_ENDPOINT='http://127.0.0.1:%d' PLEXBURST_S3_REGION=fr-par "
             "AWS_ACCESS_KEY_ID=" S3_AK " AWS_SECRET_ACCESS_KEY=" S3_SK,
             s3port);
    e2e e;
    e2e_init(&e, "e2e-s3", "s3://plexburst-test/ssh-e2e", s3env);
    assert_int_equal(e2e_bootstrap(&e, 2), 0);
    e2e_sync_analyze(&e, 102, 202);
    /* the store really is the S3 server's: the run went through it */
    assert_int_equal(tu_sh("find '%s' -path '*ssh-e2e*' | grep -q .", s3w), 0);
    /* no secret in the home's output, its state and logs, or the cloud's agent files */
    assert_int_not_equal(
        tu_sh("grep -rqsF '" S3_SK "' '%s' '%s' '%s/home'", wpath("e2e.log"), wpath("e2e-s3"), W),
        0);
    xu_s3_stop(s3w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_known_host),
        cmocka_unit_test(test_changed_host_key),
        cmocka_unit_test(test_unknown_host_key),
        cmocka_unit_test(test_pinned_host_key),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_agent_auth),
        cmocka_unit_test(test_channel),
        cmocka_unit_test(test_channel_cancel),
        cmocka_unit_test(test_agent_hello),
        cmocka_unit_test(test_agent_channel),
        cmocka_unit_test(test_sftp),
        cmocka_unit_test(test_cut_and_resume),
        cmocka_unit_test(test_dead_peer),
        cmocka_unit_test(test_install),
        cmocka_unit_test(test_sync_e2e),
        cmocka_unit_test(test_sync_cut_analysis),
        cmocka_unit_test(test_sync_s3_e2e),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
