/*
 * test_config.c - tokenvaultd's config loader accepts a complete file with
 * its defaults, and refuses every mistake an operator can make with a message
 * naming the line or key and the reason.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/token.h"
#include "vault/config.h"

/* The config texts below are printf formats with the temp dir as %1$s,
 * assembled from pieces at run time. */
#pragma GCC diagnostic ignored "-Wformat-nonliteral"

static char dir[64];
static char conf[128];

static int
write_file(const char *path, const char *data, size_t len, mode_t mode)
{
    FILE *f;
    int ok;

    unlink(path);
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    ok = fwrite(data, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    return ok && chmod(path, mode) == 0 ? 0 : -1;
}

static void
write_mode(const char *name, const char *text, mode_t mode)
{
    char path[160];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(write_file(path, text, strlen(text), mode), 0);
}

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tv-config-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(conf, sizeof(conf), "%s/tokenvault.conf", dir);
    write_mode("server.pem", "cert\n", 0644);
    write_mode("server.key", "key\n", 0600);
    write_mode("ca.pem", "ca\n", 0644);
    write_mode("pin", "1234\n", 0600);
    write_mode("loose.key", "key\n", 0644);
    snprintf(conf, sizeof(conf), "%s/data", dir);
    mkdir(conf, 0700);
    snprintf(conf, sizeof(conf), "%s/tokenvault.conf", dir);
    return 0;
}

static int
teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The sections every valid file has, with %s for the temp dir. */
static const char base_fmt[] =
    "[service]\n"
    "listen = 127.0.0.1:7443\n"
    "[tls]\n"
    "cert = %1$s/server.pem\n"
    "key = %1$s/server.key\n"
    "client_ca = %1$s/ca.pem\n"
    "[hsm]\n"
    "module = " TV_SOFTHSM_MODULE "\n"
    "token = vault\n"
    "pin_file = %1$s/pin\n"
    "[store]\n"
    "path = %1$s/data\n";

static const char client_ok[] =
    "[client gateway-a]\n"
    "subject = CN=gateway-a,O=Example\n"
    "roles = store, list\n"
    "merchants = m-2, m-1\n";

/* Writes |base| (NULL: base_fmt) with |from| replaced by |to|, then
 * |extra| (both may use %1$s for the dir) and loads it. */
static int
load_variant(struct vault_config **out, const char *from, const char *to, const char *extra,
             char *err, size_t err_len)
{
    char fmt[4096], text[8192];
    const char *at = from != NULL ? strstr(base_fmt, from) : NULL;
    int n;

    if (at != NULL)
        snprintf(fmt, sizeof(fmt), "%.*s%s%s%s", (int)(at - base_fmt), base_fmt, to,
                 at + strlen(from), extra);
    else
        snprintf(fmt, sizeof(fmt), "%s%s", base_fmt, extra);
    n = snprintf(text, sizeof(text), fmt, dir);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    assert_int_equal(write_file(conf, text, (size_t)n, 0644), 0);
    return vault_config_load(out, conf, err, err_len);
}

static int
load(struct vault_config **out, const char *extra, char *err, size_t err_len)
{
    return load_variant(out, NULL, NULL, extra, err, err_len);
}

static void
expect_variant_error(const char *from, const char *to, const char *extra, const char *want)
{
    struct vault_config *c = NULL;
    char err[VAULT_CONFIG_ERR_MAX] = "";

    assert_int_equal(load_variant(&c, from, to, extra, err, sizeof(err)), -1);
    assert_null(c);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void
expect_error(const char *extra, const char *want)
{
    struct vault_config *c = NULL;
    char err[VAULT_CONFIG_ERR_MAX] = "";

    assert_int_equal(load(&c, extra, err, sizeof(err)), -1);
    assert_null(c);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void
test_valid_with_defaults(void **state)
{
    struct vault_config *c = NULL;
    char err[VAULT_CONFIG_ERR_MAX] = "";
    const struct vault_client *cl;
    uint8_t fp[32];
    (void)state;

    if (load(&c, "[client gateway-a]\n"
                 "subject = CN=gateway-a,O=Example\n"
                 "roles = store, list\n"
                 "merchants = m-2, m-1\n"
                 "[client ops]\n"
                 "fingerprint = sha256:" "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:"
                 "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\n"
                 "roles = reveal,admin\n"
                 "merchants = *\n"
                 "[merchant m-2]\n"
                 "token_format = pan\n",
             err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 7443);
    assert_int_equal(c->max_connections, 1024);
    assert_int_equal(c->max_in_flight, 64);
    assert_int_equal(c->workers, 4);
    assert_int_equal(c->log_level, VAULT_LOG_INFO);
    assert_int_equal(c->pin_source, VAULT_PIN_FILE);
    assert_true(c->map_size == 1024ull * 1024 * 1024);
    assert_string_equal(c->hsm_token, "vault");
    assert_string_equal(c->hsm_module_args, "");
    assert_int_equal(c->hsm_reduced_key_attributes, 0);
    assert_int_equal(c->num_clients, 2);

    cl = vault_config_client(c, "CN=gateway-a,O=Example", NULL);
    assert_non_null(cl);
    assert_string_equal(cl->name, "gateway-a");
    assert_true(vault_client_allows(cl, API_ROLE_STORE, "m-1"));
    assert_true(vault_client_allows(cl, API_ROLE_LIST, "m-2"));
    assert_true(vault_client_allows(cl, API_ROLE_ANY, "m-2"));
    assert_false(vault_client_allows(cl, API_ROLE_REVEAL, "m-1"));
    assert_false(vault_client_allows(cl, API_ROLE_STORE, "m-3"));
    assert_false(vault_client_allows(cl, API_ROLE_STORE, "m-"));
    assert_null(vault_config_client(c, "CN=gateway-a", NULL));

    for (int i = 0; i < 32; i++)
        fp[i] = (uint8_t)((i % 16) * 0x11);
    cl = vault_config_client(c, "CN=whatever", fp);
    assert_non_null(cl);
    assert_string_equal(cl->name, "ops");
    assert_true(vault_client_allows(cl, API_ROLE_REVEAL, "any-merchant"));
    assert_false(vault_client_allows(cl, API_ROLE_STORE, "any-merchant"));
    assert_false(vault_client_allows(NULL, API_ROLE_ANY, NULL));

    assert_non_null(vault_config_merchant(c, "m-2"));
    assert_int_equal(vault_config_merchant(c, "m-2")->token_format, VAULT_TOKEN_PAN_SHAPED);
    assert_null(vault_config_merchant(c, "m-1"));
    vault_config_free(c);
    vault_config_free(NULL);
}

/* Adds |line| to the [service] section (after line 2) and expects |want|. */
static void
expect_service_error(const char *line, const char *want)
{
    char to[256];

    snprintf(to, sizeof(to), "listen = 127.0.0.1:7443\n%s", line);
    expect_variant_error("listen = 127.0.0.1:7443\n", to, client_ok, want);
}

static void
test_structure_errors(void **state)
{
    (void)state;
    expect_error("[clients x]\nroles = store\n", "[clients x]: unknown section");
    expect_error("[tsl]\ncert = /x\n", ":13: [tsl]: unknown section");
    expect_service_error("listen_port = 1\n", ":3: [service] listen_port: unknown key");
    expect_service_error("listen = 127.0.0.1:1\n", ":3: [service] listen: given twice");
    expect_service_error("  continued\n", ":3: not a 'key = value' line");
    expect_service_error("log_level = info ; comment\n", "log_level: 'info ; comment'");
    expect_service_error("workers\n", ":3: not a 'key = value' line");
    expect_error("", "no [client NAME] section");
    expect_error("[client a]\nsubject = CN=a\nroles = store\nmerchants = *\n[client a]\n"
                 "roles = list\n",
                 ":17: [client a]: section given twice (first at line 13)");
    expect_error("[service]\nworkers = 2\n", ":13: [service]: section given twice (first at line 1)");
    expect_error("[tlss]\n", ":13: [tlss]: unknown section");
    expect_error("[tls\n", ":13: section header without ']'");
    expect_error("[client]\nroles = store\n", "unknown section");
    expect_error("[client bad name]\nroles = store\n", "client name must be");
}

static void
test_value_errors(void **state)
{
    char line[400];
    (void)state;

    expect_service_error("max_connections = 0\n",
                         "max_connections: '0' is not a whole number in 1..65536");
    expect_service_error("workers = 4x\n", "workers: '4x'");
    expect_service_error("workers = -1\n", "workers: '-1'");
    expect_service_error("workers = \n", "workers: ''");
    expect_service_error("queue_depth = 99999999999999999999\n", "queue_depth");
    expect_service_error("log_level = verbose\n", "log_level: 'verbose' is not one of");
    expect_service_error("officer_socket = run/officer.sock\n", "must be an absolute path");
    expect_variant_error("path = %1$s/data\n", "path = %1$s/data\nmap_size_mb = 0\n", client_ok,
                         "map_size_mb: '0'");
    /* Automatic DEK rotation: at least one record, at most 2^31 (GCM with
     * random IVs stays below 2^32 per key); age up to ten years. */
    expect_variant_error("path = %1$s/data\n", "path = %1$s/data\ndek_max_encryptions = 0\n",
                         client_ok, "dek_max_encryptions: '0'");
    expect_variant_error("path = %1$s/data\n",
                         "path = %1$s/data\ndek_max_encryptions = 2147483649\n", client_ok,
                         "dek_max_encryptions: '2147483649'");
    expect_variant_error("path = %1$s/data\n", "path = %1$s/data\ndek_max_age_days = 3651\n",
                         client_ok, "dek_max_age_days: '3651'");
    expect_error("[merchant m-1]\ntoken_format = short\n", "'short' is not opaque or pan");
    expect_error("[merchant m-1]\nformat = pan\n", "[merchant m-1] format: unknown key");
    expect_error("[merchant m 1]\ntoken_format = pan\n", "merchant id must be");
    expect_error("[client a]\nsubject = CN=\x01\nroles = store\nmerchants = *\n",
                 "not printable ASCII");
    snprintf(line, sizeof(line), "[client x]\nsubject = %0190d\n", 0);
    expect_error(line, ":14: line longer than 196 characters");
}

static void
test_client_errors(void **state)
{
    (void)state;
    expect_error("[client a]\nroles = store\nmerchants = *\n", "needs exactly one of subject, fingerprint");
    expect_error("[client a]\nsubject = CN=a\nfingerprint = " "0000000000000000000000000000000000000000000000000000000000000000"
                 "\nroles = store\nmerchants = *\n", "needs exactly one of subject, fingerprint");
    expect_error("[client a]\nfingerprint = 00112233\nroles = store\nmerchants = *\n",
                 "not a SHA-256 fingerprint");
    expect_error("[client a]\nsubject = CN=a\nmerchants = *\n", "client 'a' has no roles");
    expect_error("[client a]\nsubject = CN=a\nroles = store, revel\nmerchants = *\n", "'revel' is not a role");
    expect_error("[client a]\nsubject = CN=a\nroles = any\nmerchants = *\n", "'any' is not a role");
    expect_error("[client a]\nsubject = CN=a\nroles = officer\nmerchants = *\n", "'officer' is not a role");
    expect_error("[client a]\nsubject = CN=a\nroles = store,store\nmerchants = *\n", "role 'store' given twice");
    expect_error("[client a]\nsubject = CN=a\nroles = store,\nmerchants = *\n", "'' is not a role");
    expect_error("[client a]\nsubject = CN=a\nroles = store\n", "client 'a' has no merchants");
    expect_error("[client a]\nsubject = CN=a\nroles = store\nmerchants = m-1, *\n", "'*' is not alone");
    expect_error("[client a]\nsubject = CN=a\nroles = store\nmerchants = m-1, m-1\n", "merchant 'm-1' listed twice");
    expect_error("[client a]\nsubject = CN=a\nroles = store\nmerchants = *\n"
                 "[client b]\nsubject = CN=a\nroles = list\nmerchants = *\n",
                 "clients 'a' and 'b' match the same certificate");
    expect_error("[client a]\nsubject = CN=a\nroles = store\nmerchants = *\nowner = x\n", "unknown key");
}

static void
test_file_errors(void **state)
{
    struct vault_config *c = NULL;
    char err[VAULT_CONFIG_ERR_MAX] = "", path[160];
    (void)state;

    /* A TLS key or PIN file readable by others; files that are not there. */
    expect_variant_error("/server.key", "/loose.key", client_ok,
                         "[tls] key: ");
    expect_variant_error("/server.key", "/loose.key", client_ok, "mode 0644 lets others read it");
    expect_variant_error("%1$s/pin", "%1$s/loose.key", client_ok, "[hsm] pin_file: ");
    expect_variant_error("/ca.pem", "/nope.pem", client_ok, "[tls] client_ca: ");
    expect_variant_error("/ca.pem", "/nope.pem", client_ok, "No such file");
    expect_variant_error("/server.pem", "", client_ok, "[tls] cert: ");
    expect_variant_error("/data", "/server.pem", client_ok, "[store] path: ");
    /* Missing required keys. */
    expect_variant_error("token = vault\n", "", client_ok, "[hsm] token: required key missing");
    expect_variant_error("listen = 127.0.0.1:7443\n", "", client_ok,
                         "[service] listen: required key missing");
    expect_variant_error("listen = 127.0.0.1:7443\n", "listen = 127.0.0.1\n", client_ok,
                         "is not HOST:PORT");
    expect_variant_error("listen = 127.0.0.1:7443\n", "listen = :7443\n", client_ok,
                         "is not HOST:PORT");
    expect_variant_error("listen = 127.0.0.1:7443\n", "listen = h:65536\n", client_ok,
                         "is not HOST:PORT");
    /* PIN sources: a file needs pin_file; sealed start needs the officer
     * socket and no pin_file. */
    expect_variant_error("pin_file = %1$s/pin\n", "", client_ok,
                         "[hsm] pin_file: required when pin_source = file");
    expect_variant_error("pin_file = %1$s/pin\n", "pin_source = sealed\n", client_ok,
                         "[service] officer_socket: required when pin_source = sealed");
    expect_variant_error("token = vault\n", "token = vault\npin_source = sealed\n", client_ok,
                         "not used with pin_source = sealed");
    expect_variant_error("token = vault\n", "token = vault\nshare_set = /etc/pin.set\n", client_ok,
                         "[hsm] share_set: used only with pin_source = sealed");
    assert_int_equal(load_variant(&c, "pin_file = %1$s/pin\n", "pin_source = sealed\n",
                                  "[service]\nofficer_socket = /run/tv.sock\n" "[client a]\nsubject = CN=a\nroles = store\nmerchants = *\n",
                                  err, sizeof(err)), -1);
    assert_non_null(strstr(err, "[service]: section given twice"));
    /* A section given twice is refused, not merged. */
    expect_error("[hsm]\npin_source = file\n", "[hsm]: section given twice");
    expect_error("[merchant m]\ntoken_format = pan\n[merchant m]\n", "[merchant m]: section given twice");
    /* The config file itself: missing, a directory, a NUL byte. */
    snprintf(path, sizeof(path), "%s/missing.conf", dir);
    assert_int_equal(vault_config_load(&c, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(vault_config_load(&c, dir, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a regular file"));
    assert_int_equal(write_file(path, "[service]\n\0", 11, 0644), 0);
    assert_int_equal(vault_config_load(&c, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "missing.conf:2: NUL byte"));
    assert_null(c);
}

/* A module's init string and the reduced key attributes (NSS softokn). */
static void
test_hsm_module_args(void **state)
{
    struct vault_config *c = NULL;
    char err[VAULT_CONFIG_ERR_MAX] = "";
    (void)state;

    if (load_variant(&c, "token = vault\n",
                     "token = vault\nmodule_args = configdir='sql:/var/lib/nss' flags=noModDB\n"
                     "reduced_key_attributes = yes\n",
                     client_ok, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(c->hsm_module_args, "configdir='sql:/var/lib/nss' flags=noModDB");
    assert_int_equal(c->hsm_reduced_key_attributes, 1);
    assert_int_equal(c->hsm_recycle_after_objects, VAULT_HSM_RECYCLE_AUTO);
    vault_config_free(c);
    /* The module recycle: a count, 0 for never; not a negative or a word. */
    if (load_variant(&c, "token = vault\n", "token = vault\nrecycle_after_objects = 250000\n",
                     client_ok, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(c->hsm_recycle_after_objects, 250000);
    vault_config_free(c);
    if (load_variant(&c, "token = vault\n", "token = vault\nrecycle_after_objects = 0\n",
                     client_ok, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(c->hsm_recycle_after_objects, 0);
    vault_config_free(c);
    expect_variant_error("token = vault\n", "token = vault\nrecycle_after_objects = auto\n",
                         client_ok, "recycle_after_objects: 'auto' is not a whole number");
    expect_variant_error("token = vault\n",
                         "token = vault\nrecycle_after_objects = 1000000001\n", client_ok,
                         "recycle_after_objects");
    expect_variant_error("token = vault\n", "token = vault\nreduced_key_attributes = maybe\n",
                         client_ok, "reduced_key_attributes: 'maybe' is not one of");
    expect_variant_error("token = vault\n", "token = vault\nmodule_args =\n", client_ok,
                         "module_args");
}

static void
test_sealed_start(void **state)
{
    static const char fmt[] =
        "[service]\n"
        "listen = 0.0.0.0:7443\n"
        "officer_socket = /run/tokenvault/officer.sock\n"
        "log_level = debug\n"
        "[tls]\n"
        "cert = %1$s/server.pem\n"
        "key = %1$s/server.key\n"
        "client_ca = %1$s/ca.pem\n"
        "[hsm]\n"
        "module = " TV_SOFTHSM_MODULE "\n"
        "token = pkcs11:token=vault\n"
        "pin_source = sealed\n"
        "share_set = %1$s/pin.set\n"
        "[store]\n"
        "path = %1$s/data\n"
        "map_size_mb = 64\n"
        "[client a]\nsubject = CN=a\nroles = store\nmerchants = *\n";
    struct vault_config *c = NULL;
    char err[VAULT_CONFIG_ERR_MAX] = "", text[2048], set[600];
    int n = snprintf(text, sizeof(text), fmt, dir);
    (void)state;

    /* Sealed start needs a share set: without the key, and with a file
     * that does not exist. */
    {
        char *line = strstr(text, "share_set = ");
        char cut[2048];
        int m = snprintf(cut, sizeof(cut), "%.*s%s", (int)(line - text), text, strchr(line, '\n') + 1);

        assert_int_equal(write_file(conf, cut, (size_t)m, 0644), 0);
        assert_int_equal(vault_config_load(&c, conf, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "[hsm] share_set: required when pin_source = sealed"));
    }
    assert_int_equal(write_file(conf, text, (size_t)n, 0644), 0);
    assert_int_equal(vault_config_load(&c, conf, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "[hsm] share_set: "));
    snprintf(set, sizeof(set), "%s/pin.set", dir);
    assert_int_equal(write_file(set, "# set\n", 6, 0644), 0);
    if (vault_config_load(&c, conf, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(c->pin_source, VAULT_PIN_SEALED);
    assert_string_equal(c->share_set, set);
    assert_string_equal(c->officer_socket, "/run/tokenvault/officer.sock");
    assert_string_equal(c->hsm_token, "pkcs11:token=vault");
    assert_int_equal(c->log_level, VAULT_LOG_DEBUG);
    assert_string_equal(vault_log_level_name(c->log_level), "debug");
    assert_true(c->map_size == 64ull * 1024 * 1024);
    vault_config_free(c);
    /* A module recycle logs in again: not with a sealed start, which keeps
     * no PIN (0, never, is allowed). */
    {
        char *line = strstr(text, "share_set = ");
        char with[2048];
        int m = snprintf(with, sizeof(with), "%.*srecycle_after_objects = 1000\n%s",
                         (int)(line - text), text, line);

        assert_int_equal(write_file(conf, with, (size_t)m, 0644), 0);
        assert_int_equal(vault_config_load(&c, conf, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "[hsm] recycle_after_objects: needs pin_source = file"));
        m = snprintf(with, sizeof(with), "%.*srecycle_after_objects = 0\n%s",
                     (int)(line - text), text, line);
        assert_int_equal(write_file(conf, with, (size_t)m, 0644), 0);
        if (vault_config_load(&c, conf, err, sizeof(err)) != 0)
            fail_msg("%s", err);
        assert_int_equal(c->hsm_recycle_after_objects, 0);
        vault_config_free(c);
    }
}

/* Wallet keys per merchant and the [wallet] section. */
/* A client, so the files load as far as the wallet keys. */
#define WALLET_CLIENT "[client gateway-a]\nsubject = CN=gateway-a\nroles = wallet\nmerchants = *\n"

static void
test_wallets(void **state)
{
    struct vault_config *c = NULL;
    const struct vault_merchant *m;
    char err[VAULT_CONFIG_ERR_MAX] = "";
    (void)state;

    assert_int_equal(load(&c,
                          WALLET_CLIENT "[merchant m-1]\n"
                          "applepay_keys = apple-2026, apple-2025\n"
                          "googlepay_recipient = merchant:12345678901234567890\n"
                          "googlepay_keys = google-2026\n"
                          "samsungpay_keys = samsung-2026:BjOukXvhUxYNp8R0Tk6cnNh+YYajexHxtUgEEtyac/M=, "
                          "samsung-2025:old\n"
                          "[merchant m-2]\n"
                          "token_format = pan\n"
                          "[wallet]\n"
                          "apple_signing_window_seconds = 120\n"
                          "dpan_lifetime_seconds = 900\n",
                          err, sizeof(err)),
                     0);
    assert_non_null(c);
    assert_int_equal(c->apple_signing_window_seconds, 120);
    assert_int_equal(c->samsung_max_age_seconds, 900); /* default */
    assert_int_equal(c->dpan_lifetime_seconds, 900);
    assert_non_null(m = vault_config_merchant(c, "m-1"));
    assert_non_null(m->wallets);
    assert_int_equal(m->wallets->num_apple, 2);
    assert_string_equal(m->wallets->apple[0], "apple-2026");
    assert_string_equal(m->wallets->apple[1], "apple-2025");
    assert_string_equal(m->wallets->google_recipient, "merchant:12345678901234567890");
    assert_int_equal(m->wallets->num_google, 1);
    assert_int_equal(m->wallets->num_samsung, 2);
    assert_string_equal(m->wallets->samsung[0].label, "samsung-2026");
    assert_string_equal(m->wallets->samsung[0].kid, "BjOukXvhUxYNp8R0Tk6cnNh+YYajexHxtUgEEtyac/M=");
    assert_string_equal(m->wallets->samsung[1].kid, "old");
    assert_non_null(m = vault_config_merchant(c, "m-2"));
    assert_null(m->wallets);
    vault_config_free(c);

    /* Defaults without a [wallet] section. */
    assert_int_equal(load(&c, WALLET_CLIENT, err, sizeof(err)), 0);
    assert_int_equal(c->apple_signing_window_seconds, 300);
    assert_int_equal(c->dpan_lifetime_seconds, 3600);
    vault_config_free(c);

    expect_error(WALLET_CLIENT "[merchant m-1]\napplepay_keys = a, a\n", "'a' listed twice");
    expect_error(WALLET_CLIENT "[merchant m-1]\napplepay_keys = a\napplepay_keys = b\n",
                 "applepay_keys: given twice");
    expect_error(WALLET_CLIENT "[merchant m-1]\napplepay_keys = a,,b\n", "'' is not a key label");
    expect_error(WALLET_CLIENT "[merchant m-1]\napplepay_keys = a,b,c,d,e,f,g,h,i\n", "more than 8 keys");
    expect_error(WALLET_CLIENT "[merchant m-1]\ngooglepay_keys = g\n",
                 "Google Pay needs both googlepay_recipient and googlepay_keys");
    expect_error(WALLET_CLIENT "[merchant m-1]\ngooglepay_recipient = merchant:1\n",
                 "Google Pay needs both googlepay_recipient and googlepay_keys");
    expect_error(WALLET_CLIENT "[merchant m-1]\ngooglepay_recipient = shop:1\ngooglepay_keys = g\n",
                 "'shop:1' is not merchant:<id> or gateway:<id>");
    expect_error(WALLET_CLIENT "[merchant m-1]\ngooglepay_recipient = gateway:\ngooglepay_keys = g\n",
                 "is not merchant:<id> or gateway:<id>");
    expect_error(WALLET_CLIENT "[merchant m-1]\nsamsungpay_keys = nokid\n", "'nokid' is not LABEL:KID");
    expect_error(WALLET_CLIENT "[merchant m-1]\nsamsungpay_keys = s:\n", "the kid must be");
    expect_error(WALLET_CLIENT "[merchant m-1]\nsamsungpay_keys = s:k1, t:k1\n", "label or kid listed twice");
    expect_error(WALLET_CLIENT "[merchant m-1]\nsamsungpay_keys = s:k1, s:k2\n", "label or kid listed twice");
    expect_error(WALLET_CLIENT "[merchant m-1]\nwallet_keys = x\n", "[merchant m-1] wallet_keys: unknown key");
    expect_error(WALLET_CLIENT "[wallet]\ndpan_lifetime_seconds = 0\n", "dpan_lifetime_seconds");
    expect_error(WALLET_CLIENT "[wallet]\nsamsung_max_age_seconds = 10\n", "samsung_max_age_seconds");
    expect_error(WALLET_CLIENT "[wallet]\napple_window = 5\n", "[wallet] apple_window: unknown key");
}

/* The [qr] section: its defaults, its keys, their bounds. */
static void
test_qr(void **state)
{
    struct vault_config *c = NULL;
    char err[VAULT_CONFIG_ERR_MAX] = "";
    (void)state;

    assert_int_equal(load(&c, WALLET_CLIENT, err, sizeof(err)), 0);
    assert_int_equal(c->qr_max_lifetime_seconds, API_LIFETIME_MAX);
    assert_int_equal(c->qr_retention_seconds, 604800);
    vault_config_free(c);
    assert_int_equal(load(&c, WALLET_CLIENT "[qr]\nmax_lifetime_seconds = 900\nretention_seconds = 0\n",
                          err, sizeof(err)),
                     0);
    assert_int_equal(c->qr_max_lifetime_seconds, 900);
    assert_int_equal(c->qr_retention_seconds, 0);
    vault_config_free(c);
    expect_error(WALLET_CLIENT "[qr]\nmax_lifetime_seconds = 0\n", "max_lifetime_seconds");
    expect_error(WALLET_CLIENT "[qr]\nmax_lifetime_seconds = 2592001\n", "max_lifetime_seconds");
    expect_error(WALLET_CLIENT "[qr]\nretention_seconds = 31536001\n", "retention_seconds");
    expect_error(WALLET_CLIENT "[qr]\nlifetime = 5\n", "[qr] lifetime: unknown key");
}

/* The [sessions] section: defaults, keys, bounds, default within the maximum. */
static void
test_sessions(void **state)
{
    struct vault_config *c = NULL;
    char err[VAULT_CONFIG_ERR_MAX] = "";
    (void)state;

    assert_int_equal(load(&c, WALLET_CLIENT, err, sizeof(err)), 0);
    assert_int_equal(c->session_lifetime_seconds, 900);
    assert_int_equal(c->session_max_lifetime_seconds, 3600);
    vault_config_free(c);
    assert_int_equal(load(&c,
                          WALLET_CLIENT "[sessions]\ndefault_lifetime_seconds = 60\n"
                                        "max_lifetime_seconds = 2592000\n",
                          err, sizeof(err)),
                     0);
    assert_int_equal(c->session_lifetime_seconds, 60);
    assert_int_equal(c->session_max_lifetime_seconds, API_LIFETIME_MAX);
    vault_config_free(c);
    /* Equal is allowed; a default past the maximum is not. */
    assert_int_equal(
        load(&c, WALLET_CLIENT "[sessions]\ndefault_lifetime_seconds = 3600\n", err, sizeof(err)), 0);
    vault_config_free(c);
    expect_error(WALLET_CLIENT "[sessions]\ndefault_lifetime_seconds = 3601\n",
                 "[sessions] default_lifetime_seconds: 3601 is longer than max_lifetime_seconds (3600)");
    expect_error(WALLET_CLIENT "[sessions]\nmax_lifetime_seconds = 60\n",
                 "default_lifetime_seconds: 900 is longer than max_lifetime_seconds (60)");
    expect_error(WALLET_CLIENT "[sessions]\ndefault_lifetime_seconds = 0\n", "default_lifetime_seconds");
    expect_error(WALLET_CLIENT "[sessions]\nmax_lifetime_seconds = 2592001\n", "max_lifetime_seconds");
    expect_error(WALLET_CLIENT "[sessions]\nlifetime = 5\n", "[sessions] lifetime: unknown key");
    expect_error(WALLET_CLIENT "[session]\n", "[session]: unknown section");
}

/* The documented example parses: its only complaint on a machine without
 * the service's files is the first file it names. */
static void
test_example_config(void **state)
{
    struct vault_config *c = NULL;
    char err[VAULT_CONFIG_ERR_MAX] = "";
    (void)state;

    assert_int_equal(vault_config_load(&c, TV_ETC_DIR "/tokenvault.conf.example", err,
                                       sizeof(err)), -1);
    if (strstr(err, "[hsm] pin_file: /etc/tokenvault/hsm-pin: No such file") == NULL &&
        strstr(err, "[tls] cert: /etc/tokenvault/tls/server.pem: No such file") == NULL)
        fail_msg("%s", err);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_with_defaults),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_value_errors),
        cmocka_unit_test(test_client_errors),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_hsm_module_args),
        cmocka_unit_test(test_sealed_start),
        cmocka_unit_test(test_wallets),
        cmocka_unit_test(test_qr),
        cmocka_unit_test(test_sessions),
        cmocka_unit_test(test_example_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
