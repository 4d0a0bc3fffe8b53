/*
 * cloud_scaleway_keys.c: the per-run keys of the `scaleway` cloud (cloud_scaleway.h) and the
 * instance's #cloud-config user data. No trust on first use: the home generates the instance's
 * ed25519 host key and a client key (OpenSSL), writes them in OpenSSH's private key format
 * ("openssh-key-v1", unencrypted: the host key only travels in the user data, the client key is a
 * 0600 file of the run's state dir, deleted with the run), and the SSH transport pins the host
 * key's SHA256 fingerprint. The user data installs both (cloud-init cc_ssh ssh_keys, root's
 * ssh_authorized_keys), the packages the cloud side needs, the self-destruct timer
 * (docs/scaleway.md "Self-destruct") and, for the plex runner's default start, the Plex image
 * pulled at the home's version while the run still sets up (docs/plex-runner.md).
 * Role: engine/cloud. Prerequisites: OpenSSL libcrypto (EVP ed25519, SHA-256, base64), base/buf.h.
 */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cloud_scaleway.h"
#include "fs.h"

typedef struct sshbuf {
    unsigned char b[1024];
    size_t n;
} sshbuf;

static void put_u32(sshbuf *s, uint32_t v)
{
    s->b[s->n++] = (unsigned char)(v >> 24);
    s->b[s->n++] = (unsigned char)(v >> 16);
    s->b[s->n++] = (unsigned char)(v >> 8);
    s->b[s->n++] = (unsigned char)v;
}

static void put_str(sshbuf *s, const void *p, size_t n)
{
    put_u32(s, (uint32_t)n);
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

static void b64(char *out, const unsigned char *in, size_t n)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* One ed25519 pair: the public line, the OpenSSH private key text and the SHA256 pin. */
static int one_key(char *pub, size_t pubcap, char *priv, size_t privcap, char *pin, size_t pincap,
                   const char *comment, pb_error *err)
{
    int error = 0;
    unsigned char seed[32], pk[32], digest[32];
    size_t sl = sizeof(seed), pl = sizeof(pk);
    sshbuf blob = {{0}, 0}, body = {{0}, 0}, file = {{0}, 0};
    char text[2048];
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!k || EVP_PKEY_get_raw_private_key(k, seed, &sl) != 1 ||
        EVP_PKEY_get_raw_public_key(k, pk, &pl) != 1 || sl != 32 || pl != 32) {
        error = pb_error_set(err, PB_ERROR, "cannot generate an ed25519 key (OpenSSL)");
        goto done;
    }
    put_str(&blob, "ssh-ed25519", 11);
    put_str(&blob, pk, 32);
    /* the public line */
    b64(text, blob.b, blob.n);
    snprintf(pub, pubcap, "ssh-ed25519 %.120s %.100s", text, comment);
    /* the pin: SHA256 of the blob, base64 without padding */
    unsigned int dl = 0;
    EVP_Digest(blob.b, blob.n, digest, &dl, EVP_sha256(), NULL);
    b64(text, digest, dl);
    char *eq = strchr(text, '=');
    if (eq)
        *eq = '\0';
    snprintf(pin, pincap, "SHA256:%.50s", text);
    /* the private section */
    uint32_t check;
    RAND_bytes((unsigned char *)&check, sizeof(check));
    put_u32(&body, check);
    put_u32(&body, check);
    put_str(&body, "ssh-ed25519", 11);
    put_str(&body, pk, 32);
    unsigned char sk[64];
    memcpy(sk, seed, 32);
    memcpy(sk + 32, pk, 32);
    put_str(&body, sk, 64);
    put_str(&body, comment, strlen(comment));
    for (unsigned char pad = 1; body.n % 8; pad++)
        body.b[body.n++] = pad;
    memcpy(file.b, "openssh-key-v1", 15);
    file.n = 15;
    put_str(&file, "none", 4);
    put_str(&file, "none", 4);
    put_str(&file, "", 0);
    put_u32(&file, 1);
    put_str(&file, blob.b, blob.n);
    put_str(&file, body.b, body.n);
    b64(text, file.b, file.n);
    size_t tn = strlen(text), o = 0;
    o += (size_t)snprintf(priv + o, privcap - o, "-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for (size_t i = 0; i < tn && o < privcap; i += 70)
        o += (size_t)snprintf(priv + o, privcap - o, "%.70s\n", text + i);
    if (o < privcap)
        snprintf(priv + o, privcap - o, "-----END OPENSSH PRIVATE KEY-----\n");
    OPENSSL_cleanse(sk, sizeof(sk));
    OPENSSL_cleanse(seed, sizeof(seed));
    OPENSSL_cleanse(&body, sizeof(body));
    OPENSSL_cleanse(&file, sizeof(file));
    OPENSSL_cleanse(text, sizeof(text));
done:
    EVP_PKEY_free(k);
    return error;
}

int pb_scw_keys_generate(pb_scw_keys *k, const char *client_key_path, const char *comment,
                         pb_error *err)
{
    int error;
    char priv[1024], pin[64], host_comment[96], client_comment[96];
    memset(k, 0, sizeof(*k));
    snprintf(host_comment, sizeof(host_comment), "plexburst-host-%s", comment);
    snprintf(client_comment, sizeof(client_comment), "plexburst-client-%s", comment);
    if ((error = one_key(k->host_public, sizeof(k->host_public), k->host_private,
                         sizeof(k->host_private), k->host_pin, sizeof(k->host_pin), host_comment,
                         err)) < 0 ||
        (error = one_key(k->client_public, sizeof(k->client_public), priv, sizeof(priv), pin,
                         sizeof(pin), client_comment, err)) < 0)
        goto done;
    snprintf(k->client_key_path, sizeof(k->client_key_path), "%s", client_key_path);
    error = pb_fs_write_file(client_key_path, priv, strlen(priv), 0600, err);
done:
    OPENSSL_cleanse(priv, sizeof(priv));
    return error;
}

void pb_scw_keys_wipe(pb_scw_keys *k)
{
    if (k)
        OPENSSL_cleanse(k->host_private, sizeof(k->host_private));
}

int pb_scw_version_ok(const char *v)
{
    size_t n = v ? strlen(v) : 0;
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'A' && v[i] <= 'Z') ||
              (v[i] >= 'a' && v[i] <= 'z') || v[i] == '.' || v[i] == '-'))
            return 0;
    return 1;
}

char *pb_scw_userdata_build(const pb_scw_userdata *u)
{
    pb_error e = PB_ERROR_INIT;
    pb_buf b = PB_BUF_INIT(1 << 20);
    int minutes = (int)(u->max_hours * 60 + 0.5);
    if (minutes < 1)
        minutes = 1;
    pb_buf_printf(&b, &e,
                  "#cloud-config\n"
                  "# plexburst run %s: an instance for one run, destroyed after it\n"
                  "ssh_deletekeys: true\n"
                  "ssh_genkeytypes: [ed25519]\n"
                  "disable_root: false\n"
                  "ssh_pwauth: false\n"
                  "ssh_keys:\n"
                  "  ed25519_private: |\n",
                  u->run_id);
    for (const char *p = u->keys->host_private; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        pb_buf_printf(&b, &e, "    %.*s\n", (int)n, p);
        p += n + (nl ? 1 : 0);
    }
    pb_buf_printf(&b, &e,
                  "  ed25519_public: %s\n"
                  "users:\n"
                  "  - name: root\n"
                  "    lock_passwd: true\n"
                  "    ssh_authorized_keys:\n"
                  "      - %s\n"
                  "package_update: true\n"
                  "packages:\n"
                  "  - rclone\n"
                  "  - fuse3\n"
                  "  - docker.io\n"
                  "  - curl\n"
                  "write_files:\n"
                  "  - path: /etc/fuse.conf\n"
                  "    append: true\n"
                  "    content: |\n"
                  "      user_allow_other\n",
                  u->keys->host_public, u->keys->client_public);
    /* the self-destruct: a systemd timer at the lifetime cap terminating the instance through the
     * API (an inside shutdown alone keeps it billed); without an API key, a poweroff only */
    pb_buf_printf(&b, &e,
                  "  - path: /usr/local/sbin/plexburst-selfdestruct\n"
                  "    permissions: '0700'\n"
                  "    content: |\n"
                  "      #!/bin/sh\n"
                  "      # plexburst: the lifetime cap (PLEXBURST_MAX_HOURS) is reached\n"
                  "      id=$(curl -fsS http://169.254.42.42/conf?format=json | sed -n "
                  "'s/.*\"id\": *\"\\([0-9a-f-]*\\)\".*/\\1/p' | head -1)\n");
    if (u->selfdestruct_secret)
        pb_buf_printf(&b, &e,
                      "      for i in 1 2 3 4 5 6 7 8 9 10; do\n"
                      "        curl -fsS -X POST -H 'X-Auth-Token: %s' -H 'Content-Type: "
                      "application/json' -d '{\"action\":\"terminate\"}' "
                      "%s/instance/v1/zones/%s/servers/$id/action && exit 0\n"
                      "        sleep 30\n"
                      "      done\n",
                      u->selfdestruct_secret, u->api_url, u->zone);
    pb_buf_printf(&b, &e,
                  "      poweroff\n"
                  "  - path: /etc/systemd/system/plexburst-selfdestruct.service\n"
                  "    content: |\n"
                  "      [Unit]\n"
                  "      Description=plexburst: terminate this instance at its lifetime cap\n"
                  "      [Service]\n"
                  "      Type=oneshot\n"
                  "      ExecStart=/usr/local/sbin/plexburst-selfdestruct\n"
                  "  - path: /etc/systemd/system/plexburst-selfdestruct.timer\n"
                  "    content: |\n"
                  "      [Unit]\n"
                  "      Description=plexburst: lifetime cap of this instance\n"
                  "      [Timer]\n"
                  "      OnBootSec=%dmin\n"
                  "      AccuracySec=1min\n"
                  "      [Install]\n"
                  "      WantedBy=timers.target\n"
                  "runcmd:\n"
                  "  - [mkdir, -p, -m, '0700', '%s']\n"
                  "  - [systemctl, daemon-reload]\n"
                  "  - [systemctl, enable, --now, plexburst-selfdestruct.timer]\n",
                  minutes, u->workdir);
    /* last, so that a failed pull delays nothing else; the start pulls it again if need be */
    if (u->plex_version && pb_scw_version_ok(u->plex_version))
        pb_buf_printf(&b, &e, "  - [docker, pull, 'plexinc/pms-docker:%s']\n", u->plex_version);
    if (e.code) {
        pb_buf_dispose(&b);
        return NULL;
    }
    return pb_buf_detach(&b);
}
