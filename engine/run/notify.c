/*
 * notify.c: pb_notify_send, pb_notify_mask and pb_notify_hook (plexburst/notify.h): the ping of
 * a run to a healthchecks.io-style URL or an ntfy topic over libcurl, the URL shown only masked,
 * and a hook command given the run's JSON on stdin through base/proc.h's bounded shell runner.
 * Role: used by the CLI around pb_run; never fails a run by itself (the caller warns).
 * Prerequisites: libcurl, POSIX (mkstemp).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>

#include "fs.h"
#include "plexburst/notify.h"
#include "proc.h"

#define NOTIFY_URL_MAX 2048

const char *pb_notify_mask(char *buf, size_t cap, const char *url)
{
    if (!cap)
        return buf;
    const char *s = url ? url : "";
    const char *sep = strstr(s, "://");
    if (!sep) {
        snprintf(buf, cap, "***");
        return buf;
    }
    const char *host = sep + 3, *end = host + strcspn(host, "/?#");
    const char *at = memchr(host, '@', (size_t)(end - host));
    if (at)
        host = at + 1;
    snprintf(buf, cap, "%.*s://%s%.*s%s", (int)(sep - s), s, at ? "***@" : "", (int)(end - host),
             host, *end ? "/***" : "");
    return buf;
}

/* The URL to POST for `event` (NULL: nothing to send) into out; *ntfy set for an ntfy topic. */
static int target(char *out, size_t cap, const char *url, int event, int *ntfy, pb_error *err)
{
    char masked[128];
    *ntfy = 0;
    if (!strncmp(url, "ntfy+", 5)) {
        url += 5;
        *ntfy = 1;
    }
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return pb_error_set(err, PB_EINVALID, "notify: %s is not an http(s) URL",
                            pb_notify_mask(masked, sizeof(masked), url));
    const char *host = strstr(url, "://") + 3;
    size_t hl = strcspn(host, "/?#");
    if ((hl == 7 && !strncmp(host, "ntfy.sh", 7)) ||
        (hl > 8 && !strncmp(host + hl - 8, ".ntfy.sh", 8)))
        *ntfy = 1;
    if (strlen(url) + 8 >= cap)
        return pb_error_set(err, PB_EINVALID, "notify: the URL is too long");
    if (*ntfy || event == PB_NOTIFY_SUCCESS) {
        snprintf(out, cap, "%s", url);
        return 0;
    }
    const char *suffix = event == PB_NOTIFY_START ? "/start" : "/fail";
    size_t q = (size_t)(host - url) + hl + strcspn(host + hl, "?#");
    size_t base = q;
    while (base > (size_t)(host - url) + hl && url[base - 1] == '/')
        base--;
    snprintf(out, cap, "%.*s%s%s", (int)base, url, suffix, url + q);
    return 0;
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

int pb_notify_send(const char *url, int event, const char *title, const char *body,
                   double timeout_s, pb_error *err)
{
    int error = 0, ntfy = 0;
    char to[NOTIFY_URL_MAX + 16], masked[128], hdr[512];
    CURL *c = NULL;
    struct curl_slist *h = NULL;
    if (!url || !*url)
        return pb_error_set(err, PB_EINVALID, "notify: no URL");
    if ((error = target(to, sizeof(to), url, event, &ntfy, err)) < 0)
        return error;
    if (ntfy && event == PB_NOTIFY_START)
        return 0; /* a push message when the run starts is noise */
    pb_notify_mask(masked, sizeof(masked), url);
    if (!(c = curl_easy_init()))
        return pb_error_set(err, PB_ENOMEM, "notify: curl_easy_init failed");
    h = curl_slist_append(h, "Content-Type: text/plain; charset=utf-8");
    if (title && *title) {
        snprintf(hdr, sizeof(hdr), "Title: %s", title);
        for (char *p = hdr; *p; p++)
            if (*p == '\r' || *p == '\n')
                *p = ' ';
        h = curl_slist_append(h, hdr);
    }
    if (ntfy) {
        h = curl_slist_append(h, event == PB_NOTIFY_FAILURE ? "Tags: rotating_light"
                                                            : "Tags: white_check_mark");
        if (event == PB_NOTIFY_FAILURE)
            h = curl_slist_append(h, "Priority: high");
    }
    long ms = (long)((timeout_s > 0 ? timeout_s : 10) * 1000);
    curl_easy_setopt(c, CURLOPT_URL, to);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "plexburst");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK)
        error =
            pb_error_setd(err, PB_ENET, (int)cc, "notify: %s: %s", masked, curl_easy_strerror(cc));
    else if (status >= 400)
        error = pb_error_set(err, PB_ENET, "notify: %s answered HTTP %ld", masked, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return error;
}

/* `s` in single quotes for /bin/sh into out; -1 when it does not fit. */
static int sh_quote(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    if (cap < 3)
        return -1;
    out[n++] = '\'';
    for (; *s; s++) {
        const char *piece = *s == '\'' ? "'\\''" : NULL;
        size_t len = piece ? 4 : 1;
        if (n + len + 2 > cap)
            return -1;
        if (piece)
            memcpy(out + n, piece, len);
        else
            out[n] = *s;
        n += len;
    }
    out[n++] = '\'';
    out[n] = '\0';
    return 0;
}

int pb_notify_hook(int *status, const char *cmd, const char *input, double timeout_s, pb_error *err)
{
    int error = 0, fd = -1;
    char path[4096], quoted[8300];
    char *line = NULL;
    const char *tmp = getenv("TMPDIR");
    *status = -1;
    snprintf(path, sizeof(path), "%s/plexburst-hook.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if ((fd = mkstemp(path)) < 0) {
        path[0] = '\0';
        error = pb_error_errno(err, "hook: cannot make its input file");
        goto done;
    }
    if ((error = pb_fs_write_all(fd, input ? input : "", input ? strlen(input) : 0, "hook input",
                                 err)) < 0)
        goto done;
    close(fd);
    fd = -1;
    if (sh_quote(quoted, sizeof(quoted), path) < 0) {
        error = pb_error_set(err, PB_EINVALID, "hook: the input file's path is too long");
        goto done;
    }
    size_t n = strlen(quoted) + strlen(cmd) + 16;
    if (!(line = malloc(n))) {
        error = pb_error_set(err, PB_ENOMEM, "out of memory");
        goto done;
    }
    snprintf(line, n, "exec <%s\n%s", quoted, cmd);
    pb_proc_limits lim = {timeout_s > 0 ? timeout_s : 120, NULL, NULL};
    error = pb_proc_shell_for(status, line, &lim, err);
done:
    if (fd >= 0)
        close(fd);
    if (path[0])
        unlink(path);
    free(line);
    return error;
}
