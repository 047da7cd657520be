/*
 * tokenvault - the command-line client of tokenvaultd.
 *
 *   tokenvault [global options] AREA VERB [field options]
 *
 * Every subcommand is a row of API_OP_LIST ("card store", "officer unseal"),
 * every field option a field of the operation's request schema; values are
 * parsed by cli_args.h and the answer printed by cli_format.h. Nothing here
 * knows one operation from another, so a new opcode is a new subcommand with
 * no code written for it.
 *
 * Secret fields (PAN, holder, e-mail, CVC, unseal share) are never options:
 * argv is readable by every user (/proc/PID/cmdline) and lands in shell
 * history. They are read as `name=value` lines from stdin or --secrets-file,
 * and every buffer that held one is wiped.
 *
 * Exit codes (also in --help):
 *   0  OK
 *   1  internal error, in the service (INTERNAL) or here, or unknown
 *   2  usage: bad option, bad value, missing required field, secret on argv;
 *      found before connecting
 *   3  connection, TLS, timeout or configuration error (API_ERR_*); after a
 *      timeout or a broken connection the request's outcome is unknown
 *   4  DENIED: the client certificate's roles do not allow it
 *   5  NOT_FOUND
 *   6  refused by a business rule (status class REFUSED)
 *   7  service unavailable, retry later (class RETRY)
 *   8  the service refused the request as invalid (classes PROTOCOL, INPUT)
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "api/client.h"
#include "api/proto.h"
#include "tools/cli_args.h"
#include "tools/cli_format.h"

enum {
    TV_EXIT_OK = 0,
    TV_EXIT_INTERNAL = 1,
    TV_EXIT_USAGE = 2,
    TV_EXIT_CONNECT = 3,
    TV_EXIT_DENIED = 4,
    TV_EXIT_NOT_FOUND = 5,
    TV_EXIT_REFUSED = 6,
    TV_EXIT_RETRY = 7,
    TV_EXIT_INVALID = 8,
};

/* Longest --timeout: an hour. A request that takes longer has failed. */
#define TIMEOUT_MAX_MS 3600000u
/* Longest host name (RFC 1035) and the ":port" after it. */
#define HOST_MAX 255u
/* Longest "--name" of an option before its "=value". */
#define OPTION_ARG_MAX 64u
/* Output is buffered here, not in a libc buffer, so that a revealed PAN can
 * be wiped from it before exit. */
#define STDOUT_BUF_LEN 16384u

/* Global options: each also from its environment variable. */
enum global {
    G_SERVER,
    G_UNIX,
    G_CA,
    G_CERT,
    G_KEY,
    G_SERVER_NAME,
    G_TIMEOUT,
    G_SECRETS_FILE,
    G_JSON,
    G_COUNT_,
};

static const struct {
    const char *name; /* without dashes */
    const char *arg;  /* NULL: a flag */
    const char *env;
    const char *help;
} globals[G_COUNT_] = {
    [G_SERVER] = {"server", "HOST:PORT", "TOKENVAULT_SERVER",
                  "the vault over TLS 1.3 with a client certificate"},
    [G_UNIX] = {"unix", "PATH", "TOKENVAULT_UNIX", "the vault's local socket (officer commands)"},
    [G_CA] = {"ca", "FILE", "TOKENVAULT_CA", "CA certificates the server's must chain to"},
    [G_CERT] = {"cert", "FILE", "TOKENVAULT_CERT", "this client's certificate (PEM)"},
    [G_KEY] = {"key", "FILE", "TOKENVAULT_KEY", "this client's private key (PEM)"},
    [G_SERVER_NAME] = {"server-name", "NAME", "TOKENVAULT_SERVER_NAME",
                       "name the server certificate must carry (default: HOST)"},
    [G_TIMEOUT] = {"timeout", "MS", "TOKENVAULT_TIMEOUT",
                   "connect, handshake and request deadline in milliseconds"},
    [G_SECRETS_FILE] = {"secrets-file", "FILE", "TOKENVAULT_SECRETS_FILE",
                        "secret fields as name=value lines (default: stdin)"},
    [G_JSON] = {"json", NULL, "TOKENVAULT_JSON", "print one JSON object instead of lines"},
};

struct cli {
    const char *g[G_COUNT_]; /* borrowed from argv or the environment */
    bool json;
    const struct cli_op *op;
    const char *blob_path; /* the BLOB field's FILE */
    const struct api_field *blob_field;
};

/* ---- secrets in jansson and stdout --------------------------------------------------- */

/* jansson copies every string it is given (a revealed PAN, the JSON text);
 * wiping on free covers all of its copies. */
static void *
wipe_malloc(size_t n)
{
    return malloc(n);
}

static void
wipe_free(void *p)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, malloc_usable_size(p));
    free(p);
}

static char stdout_buf[STDOUT_BUF_LEN];

/* ---- help ---------------------------------------------------------------------------- */

static void
usage_top(FILE *f)
{
    const struct cli_op *ops;
    size_t num = 0;

    ops = cli_op_all(&num);
    fprintf(f, "usage: tokenvault [global options] AREA VERB [options]\n"
               "       tokenvault [AREA [VERB]] --help\n\ncommands:\n");
    for (size_t i = 0; i < num; i++) {
        char cmd[64];

        snprintf(cmd, sizeof(cmd), "%s %s", ops[i].area, ops[i].verb);
        fprintf(f, "  %-18s %s\n", cmd, ops[i].summary);
    }
    fprintf(f, "\nglobal options (each also read from the environment variable shown):\n");
    for (size_t i = 0; i < G_COUNT_; i++) {
        char opt[48];

        snprintf(opt, sizeof(opt), "--%s%s%s", globals[i].name, globals[i].arg ? " " : "",
                 globals[i].arg ? globals[i].arg : "");
        fprintf(f, "  %-22s %-24s %s\n", opt, globals[i].env, globals[i].help);
    }
    fprintf(f, "  %-22s %-24s %s\n", "--help", "", "this text; after a command, its options");
    fprintf(f,
            "\nsecret fields (PAN, holder, e-mail, CVC, unseal share) are never options: give\n"
            "them on stdin or in --secrets-file as name=value lines (pan=4111111111111111).\n"
            "A command with secret fields reads stdin to its end unless stdin is a terminal\n"
            "and none of them is required.\n"
            "\nexit codes:\n"
            "  0  OK\n"
            "  1  internal error (service INTERNAL, or here)\n"
            "  2  usage: bad option or value, missing required field, secret on argv\n"
            "  3  connection, TLS, timeout or configuration error\n"
            "  4  DENIED\n"
            "  5  NOT_FOUND\n"
            "  6  refused by a business rule (CONFLICT, EXPIRED, LIMIT_EXCEEDED, ...)\n"
            "  7  service unavailable now; retry later (OVERLOADED, SEALED, ...)\n"
            "  8  request refused as invalid (BAD_VALUE, CARD_INVALID, ...)\n");
}

static void
usage_area(FILE *f, const char *area)
{
    const struct cli_op *ops;
    size_t num = 0;

    ops = cli_op_all(&num);
    fprintf(f, "usage: tokenvault [global options] %s VERB [options]\n\nverbs:\n", area);
    for (size_t i = 0; i < num; i++)
        if (strcmp(ops[i].area, area) == 0)
            fprintf(f, "  %-12s %s\n", ops[i].verb, ops[i].summary);
}

/* Help of one subcommand: every field option with its wire name, type,
 * limits, whether it is required, and whether it is secret. */
static int
usage_op(FILE *f, const struct cli_op *op)
{
    const struct api_schema *req = api_schema_request(op->opcode);
    const struct api_schema *resp = api_schema_response(op->opcode);
    int rc = 0;

    if (req == NULL || resp == NULL)
        return CLI_ERR_USAGE;
    fprintf(f, "usage: tokenvault [global options] %s %s [options]\n\n%s\nrole required: %s\n",
            op->area, op->verb, op->summary, api_role_name(op->role));
    fprintf(f, "\noptions:%s\n", req->num_fields == 0 ? " none" : "");
    for (size_t i = 0; i < req->num_fields && rc == 0; i++) {
        const struct api_field *fld = &req->fields[i];
        const struct api_tag_info *info = api_tag_info(fld->tag);
        char opt[CLI_OPTION_NAME_MAX];
        char *what = NULL;

        if (info == NULL || cli_option_name(opt, fld->tag) < 0)
            return CLI_ERR_USAGE;
        rc = cli_option_help(&what, fld);
        if (rc < 0)
            break;
        fprintf(f, "  --%s (%s)%s\n      %s; %s", opt, info->wire,
                info->type == API_T_BLOB ? " FILE" : "",
                (fld->flags & API_FIELD_REQUIRED) ? "required" : "optional", what);
        if (info->flags & API_TAG_SECRET)
            fprintf(f, "; secret: never an option, give it on stdin or in --secrets-file as"
                       " the line %s=VALUE", opt);
        fprintf(f, "\n");
        cli_text_free(what);
    }
    fprintf(f, "\nanswer fields:");
    for (size_t i = 0; i < resp->num_fields; i++) {
        const struct api_tag_info *info = api_tag_info(resp->fields[i].tag);

        fprintf(f, " %s", info != NULL ? info->wire : "?");
    }
    fprintf(f, "%s\n\nrun 'tokenvault --help' for the global options and exit codes.\n",
            resp->num_fields == 0 ? " none" : "");
    return rc;
}

/* ---- reporting ------------------------------------------------------------------------ */

static int
print_json(json_t *obj)
{
    int rc = json_dumpf(obj, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);

    if (rc == 0 && fputc('\n', stdout) == EOF)
        rc = -1;
    return rc;
}

/* A failure: in JSON mode one object on stdout, else one line on stderr.
 * |status| is a status or error name, |field| a wire name or NULL. */
static void
report(const struct cli *c, const char *status, const char *message, const char *field,
       const struct api_error_resp *err)
{
    json_t *obj;

    if (!c->json) {
        fprintf(stderr, "tokenvault: %s: %s", status, message);
        if (field != NULL)
            fprintf(stderr, " (field %s)", field);
        if (err != NULL && err->has_rule)
            fprintf(stderr, " (rule %s)", err->rule);
        if (err != NULL && err->has_retry_after_ms)
            fprintf(stderr, "; retry after %u ms", (unsigned)err->retry_after_ms);
        fprintf(stderr, "\n");
        return;
    }
    obj = json_object();
    if (obj == NULL || json_object_set_new(obj, "status", json_string(status)) < 0 ||
        json_object_set_new(obj, "message", json_string(message)) < 0 ||
        (field != NULL && json_object_set_new(obj, "field", json_string(field)) < 0) ||
        (err != NULL && err->has_rule &&
         json_object_set_new(obj, "rule", json_string(err->rule)) < 0) ||
        (err != NULL && err->has_retry_after_ms &&
         json_object_set_new(obj, "retryAfterMs", json_integer(err->retry_after_ms)) < 0) ||
        print_json(obj) < 0)
        fprintf(stderr, "tokenvault: %s: %s\n", status, message);
    json_decref(obj);
}

static int
usage_error(const struct cli *c, const char *why)
{
    report(c, "USAGE", why, NULL, NULL);
    if (!c->json)
        fprintf(stderr, "run 'tokenvault%s%s%s%s --help' for the options\n",
                c->op != NULL ? " " : "", c->op != NULL ? c->op->area : "",
                c->op != NULL ? " " : "", c->op != NULL ? c->op->verb : "");
    return TV_EXIT_USAGE;
}

static const char *
client_error_message(int r)
{
    switch (r) {
    case API_ERR_NO_MEMORY: return "out of memory";
    case API_ERR_INVALID_ARG: return "the client library refused the request or configuration";
    case API_ERR_CONNECT: return "cannot connect to the server";
    case API_ERR_TLS: return "TLS handshake or certificate verification failed";
    case API_ERR_TIMEOUT: return "deadline passed; the request's outcome is unknown";
    case API_ERR_CONNECTION: return "the connection broke; the request's outcome is unknown";
    case API_ERR_PROTOCOL: return "the server sent a frame this client cannot accept";
    case API_ERR_BUSY: return "too many requests in flight";
    case API_ERR_CONFIG: return "cannot use the CA, certificate or key file";
    default: return "unknown error";
    }
}

/* The wire status of a negated return value, or 0 if it is not one. */
static unsigned
wire_status(int r)
{
    if (r >= 0 || r <= -65536 || api_status_name((unsigned)-r) == NULL)
        return 0;
    return (unsigned)-r;
}

static int
exit_for(int r)
{
    unsigned status = wire_status(r);

    if (r == 0)
        return TV_EXIT_OK;
    if (status != 0) {
        switch (api_status_class(status)) {
        case API_CLASS_PROTOCOL:
        case API_CLASS_INPUT: return TV_EXIT_INVALID;
        case API_CLASS_DENIED: return TV_EXIT_DENIED;
        case API_CLASS_NOTFOUND: return TV_EXIT_NOT_FOUND;
        case API_CLASS_REFUSED: return TV_EXIT_REFUSED;
        case API_CLASS_RETRY: return TV_EXIT_RETRY;
        default: return TV_EXIT_INTERNAL;
        }
    }
    switch (r) {
    case API_ERR_INVALID_ARG: return TV_EXIT_USAGE;
    case API_ERR_CONNECT:
    case API_ERR_TLS:
    case API_ERR_TIMEOUT:
    case API_ERR_CONNECTION:
    case API_ERR_PROTOCOL:
    case API_ERR_BUSY:
    case API_ERR_CONFIG: return TV_EXIT_CONNECT;
    default: return TV_EXIT_INTERNAL;
    }
}

/* Reports what api_client_* returned and gives the exit code. */
static int
call_failed(const struct cli *c, int r, const struct api_error_resp *err)
{
    unsigned status = wire_status(r);
    const struct api_tag_info *info;
    char tagbuf[8];
    const char *field = NULL;

    if (status == 0) {
        report(c, api_strerror(r), client_error_message(r), NULL, NULL);
        return exit_for(r);
    }
    if (err->has_error_tag) {
        info = api_tag_info(err->error_tag);
        if (info != NULL) {
            field = info->wire;
        } else {
            snprintf(tagbuf, sizeof(tagbuf), "0x%04x", err->error_tag);
            field = tagbuf;
        }
    }
    report(c, api_status_name(status), err->message[0] != '\0' ? err->message
                                                               : api_status_description(status),
           field, err);
    return exit_for(r);
}

/* ---- input files ------------------------------------------------------------------------ */

/* Reads all of |fd| into a new buffer of at most |max| bytes (+1 for a NUL).
 * Returns 0, 1 when there is more than |max|, or -1 with errno. The buffer
 * is wiped and freed on failure. */
static int
read_all(int fd, size_t max, uint8_t **out, size_t *out_len)
{
    uint8_t *buf = malloc(max + 1);
    size_t len = 0;
    int rc = 0;

    if (buf == NULL)
        return -1;
    for (;;) {
        ssize_t n = read(fd, buf + len, max + 1 - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            rc = 1;
            break;
        }
    }
    if (rc != 0) {
        OPENSSL_cleanse(buf, max + 1);
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

/* Opens |path| ("-": stdin) for reading; -1 with errno. */
static int
open_input(const char *path)
{
    if (strcmp(path, "-") == 0)
        return dup(STDIN_FILENO);
    return open(path, O_RDONLY | O_CLOEXEC);
}

static int
read_blob(struct cli *c, struct cli_request *req)
{
    const struct api_tag_info *info = api_tag_info(c->blob_field->tag);
    char why[CLI_WHY_MAX];
    uint8_t *data = NULL;
    size_t len = 0;
    int fd = open_input(c->blob_path), rc;

    if (fd < 0 || info == NULL) {
        snprintf(why, sizeof(why), "cannot open %s: %s", c->blob_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return usage_error(c, why);
    }
    rc = read_all(fd, (size_t)info->max, &data, &len);
    close(fd);
    if (rc != 0) {
        snprintf(why, sizeof(why), "%s: %s", c->blob_path,
                 rc > 0 ? "larger than the field's limit" : strerror(errno));
        return usage_error(c, why);
    }
    if (cli_request_set_blob(req, c->blob_field, data, len, why) < 0)
        return usage_error(c, why);
    return TV_EXIT_OK;
}

/* Reads the secret lines from --secrets-file or stdin into |req|. */
static int
read_secrets(struct cli *c, struct cli_request *req)
{
    const char *path = c->g[G_SECRETS_FILE];
    char why[CLI_WHY_MAX];
    bool required = false;
    uint8_t *text = NULL;
    size_t len = 0;
    struct stat st;
    int fd = -1, rc, ex = TV_EXIT_OK;

    if (!cli_request_has_secrets(req, &required))
        return TV_EXIT_OK;
    if (path == NULL) {
        /* An interactive shell with nothing to give is not made to wait. */
        if (!required && isatty(STDIN_FILENO))
            return TV_EXIT_OK;
        if (c->blob_path != NULL && strcmp(c->blob_path, "-") == 0)
            return usage_error(c, "stdin cannot carry both the file and the secrets: "
                                  "use --secrets-file");
        if (isatty(STDIN_FILENO))
            fprintf(stderr, "tokenvault: secrets as name=value lines, then Ctrl-D:\n");
        path = "-";
    }
    fd = open_input(path);
    if (fd < 0) {
        snprintf(why, sizeof(why), "cannot open %s: %s", path, strerror(errno));
        return usage_error(c, why);
    }
    /* A secrets file others can read has already leaked; say so rather than
     * use it. */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0 &&
        strcmp(path, "-") != 0) {
        close(fd);
        snprintf(why, sizeof(why), "%s: readable by group or others (chmod 600)", path);
        return usage_error(c, why);
    }
    rc = read_all(fd, CLI_SECRETS_MAX, &text, &len);
    close(fd);
    if (rc != 0) {
        snprintf(why, sizeof(why), "secrets: %s",
                 rc > 0 ? "more than the allowed size" : strerror(errno));
        return usage_error(c, why);
    }
    if (cli_request_set_secrets(req, (const char *)text, len, why) < 0)
        ex = usage_error(c, why);
    OPENSSL_cleanse(text, len);
    free(text);
    return ex;
}

/* ---- arguments -------------------------------------------------------------------------- */

/* Splits "--name=value" or "--name value": copies the name (without dashes)
 * to |name|, sets *value (NULL when none follows) and advances *i past what
 * was used when |want_value|. Returns 0, or -1 for a name too long. */
static int
split_option(int argc, char **argv, int *i, char name[OPTION_ARG_MAX], bool want_value,
             const char **value)
{
    const char *arg = argv[*i] + 2;
    const char *eq = strchr(arg, '=');
    size_t n = eq != NULL ? (size_t)(eq - arg) : strlen(arg);

    if (n >= OPTION_ARG_MAX)
        return -1;
    memcpy(name, arg, n);
    name[n] = '\0';
    *value = NULL;
    if (eq != NULL)
        *value = eq + 1;
    else if (want_value && *i + 1 < argc)
        *value = argv[++*i];
    return 0;
}

static int
global_find(const char *name)
{
    for (int g = 0; g < G_COUNT_; g++)
        if (strcmp(globals[g].name, name) == 0)
            return g;
    return -1;
}

/* Handles argv[*i] if it is a global option: 1 if it was, 0 if not, or an
 * exit code (negated) for a usage error. */
static int
take_global(struct cli *c, int argc, char **argv, int *i)
{
    char name[OPTION_ARG_MAX], why[CLI_WHY_MAX];
    const char *value = NULL;
    int save = *i, g;

    if (split_option(argc, argv, i, name, false, &value) < 0)
        return 0;
    g = global_find(name);
    if (g < 0)
        return 0;
    if (globals[g].arg == NULL) {
        if (value != NULL) {
            snprintf(why, sizeof(why), "--%s takes no value", name);
            return -usage_error(c, why);
        }
        c->json = true;
        c->g[g] = "1";
        return 1;
    }
    *i = save;
    if (split_option(argc, argv, i, name, true, &value) < 0 || value == NULL) {
        snprintf(why, sizeof(why), "--%s needs a value (%s)", name, globals[g].arg);
        return -usage_error(c, why);
    }
    c->g[g] = value;
    return 1;
}

/* The environment fills what argv did not give; a --server or --unix on argv
 * hides both variables. TOKENVAULT_JSON is read first thing, in run(). */
static void
apply_env(struct cli *c)
{
    bool where = c->g[G_SERVER] != NULL || c->g[G_UNIX] != NULL;

    for (int g = 0; g < G_COUNT_; g++) {
        const char *v;

        if (g == G_JSON || c->g[g] != NULL || ((g == G_SERVER || g == G_UNIX) && where))
            continue;
        v = getenv(globals[g].env);
        if (v != NULL && v[0] != '\0')
            c->g[g] = v;
    }
}

/* "HOST:PORT" or "[V6ADDR]:PORT" into |host| and *port. */
static int
parse_server(const char *s, char host[HOST_MAX + 1], uint16_t *port)
{
    const char *colon, *h = s;
    size_t hlen;
    unsigned long p;
    char *end = NULL;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (close == NULL || close[1] != ':')
            return -1;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -1;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen > HOST_MAX || colon[1] < '0' || colon[1] > '9')
        return -1;
    errno = 0;
    p = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || p == 0 || p > 65535)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* The client configuration from the global options. */
static int
make_config(struct cli *c, struct api_client_config *cfg, char host[HOST_MAX + 1])
{
    char why[CLI_WHY_MAX];

    memset(cfg, 0, sizeof(*cfg));
    if ((c->g[G_SERVER] != NULL) == (c->g[G_UNIX] != NULL))
        return usage_error(c, "give one of --server HOST:PORT or --unix PATH "
                              "(or TOKENVAULT_SERVER / TOKENVAULT_UNIX)");
    if (c->g[G_TIMEOUT] != NULL) {
        unsigned long ms;
        char *end = NULL;

        errno = 0;
        ms = strtoul(c->g[G_TIMEOUT], &end, 10);
        if (c->g[G_TIMEOUT][0] < '0' || c->g[G_TIMEOUT][0] > '9' || errno != 0 ||
            *end != '\0' || ms == 0 || ms > TIMEOUT_MAX_MS) {
            snprintf(why, sizeof(why), "--timeout: milliseconds in 1..%u", TIMEOUT_MAX_MS);
            return usage_error(c, why);
        }
        cfg->connect_timeout_ms = cfg->handshake_timeout_ms = cfg->request_timeout_ms =
            (unsigned)ms;
    }
    if (c->g[G_UNIX] != NULL) {
        cfg->unix_path = c->g[G_UNIX];
        return TV_EXIT_OK;
    }
    if (parse_server(c->g[G_SERVER], host, &cfg->port) < 0)
        return usage_error(c, "--server: expected HOST:PORT");
    if (c->g[G_CA] == NULL || c->g[G_CERT] == NULL || c->g[G_KEY] == NULL)
        return usage_error(c, "--server needs --ca, --cert and --key");
    cfg->host = host;
    cfg->server_name = c->g[G_SERVER_NAME];
    cfg->ca_file = c->g[G_CA];
    cfg->cert_file = c->g[G_CERT];
    cfg->key_file = c->g[G_KEY];
    return TV_EXIT_OK;
}

/* Parses the field options after the verb into |req|. */
static int
parse_fields(struct cli *c, int argc, char **argv, int i, struct cli_request *req)
{
    char name[OPTION_ARG_MAX], why[CLI_WHY_MAX];

    for (; i < argc; i++) {
        const struct api_field *f;
        const struct api_tag_info *info;
        const char *value = NULL;
        int g;

        if (strncmp(argv[i], "--", 2) != 0 || argv[i][2] == '\0') {
            snprintf(why, sizeof(why), "unexpected argument %d: options start with --", i);
            return usage_error(c, why);
        }
        g = take_global(c, argc, argv, &i);
        if (g < 0)
            return -g;
        if (g > 0)
            continue;
        if (split_option(argc, argv, &i, name, true, &value) < 0 ||
            (f = cli_option_find(req->schema, name)) == NULL ||
            (info = api_tag_info(f->tag)) == NULL) {
            snprintf(why, sizeof(why), "unknown option for %s %s", c->op->area, c->op->verb);
            return usage_error(c, why);
        }
        if (value == NULL && !(info->flags & API_TAG_SECRET)) {
            snprintf(why, sizeof(why), "--%s needs a value", name);
            return usage_error(c, why);
        }
        if (info->type == API_T_BLOB) {
            if (c->blob_path != NULL) {
                snprintf(why, sizeof(why), "--%s: given twice", name);
                return usage_error(c, why);
            }
            c->blob_path = value;
            c->blob_field = f;
            continue;
        }
        /* A secret is refused here whatever its value (even none). */
        if (cli_request_set(req, f, value != NULL ? value : "", CLI_SRC_ARGV, why) < 0)
            return usage_error(c, why);
    }
    return TV_EXIT_OK;
}

/* ---- the call ----------------------------------------------------------------------------- */

static int
print_answer(const struct cli *c, const struct api_schema *s, const void *msg)
{
    json_t *obj = NULL;
    int rc;

    if (!c->json)
        return cli_msg_print(stdout, s, msg) < 0 ? TV_EXIT_INTERNAL : TV_EXIT_OK;
    rc = cli_msg_json(&obj, s, msg);
    if (rc == 0)
        rc = print_json(obj);
    json_decref(obj);
    return rc < 0 ? TV_EXIT_INTERNAL : TV_EXIT_OK;
}

static int
run(int argc, char **argv)
{
    struct cli c = {0};
    struct cli_request req = {0};
    struct api_client_config cfg;
    struct api_client *client = NULL;
    struct api_error_resp err = {0};
    const struct api_schema *resp_schema = NULL;
    void *resp = NULL;
    char host[HOST_MAX + 1] = "", why[CLI_WHY_MAX];
    const char *area, *verb;
    const char *json_env = getenv(globals[G_JSON].env);
    int i = 1, ex = TV_EXIT_OK, r;

    /* Known before the first error is reported, which it shapes. */
    c.json = json_env != NULL && json_env[0] != '\0' && strcmp(json_env, "0") != 0;
    for (; i < argc && strncmp(argv[i], "-", 1) == 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage_top(stdout);
            goto out;
        }
        r = strncmp(argv[i], "--", 2) == 0 ? take_global(&c, argc, argv, &i) : 0;
        if (r < 0) {
            ex = -r;
            goto out;
        }
        if (r == 0) {
            ex = usage_error(&c, "unknown global option");
            goto out;
        }
    }
    if (i >= argc) {
        usage_top(stderr);
        ex = TV_EXIT_USAGE;
        goto out;
    }
    area = argv[i++];
    if (!cli_area_exists(area)) {
        ex = usage_error(&c, "unknown command; 'tokenvault --help' lists them");
        goto out;
    }
    if (i >= argc || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
        usage_area(i >= argc ? stderr : stdout, area);
        ex = i >= argc ? TV_EXIT_USAGE : TV_EXIT_OK;
        goto out;
    }
    verb = argv[i++];
    c.op = cli_op_find(area, verb);
    if (c.op == NULL) {
        snprintf(why, sizeof(why), "%s has no such verb; 'tokenvault %s --help' lists them",
                 area, area);
        ex = usage_error(&c, why);
        goto out;
    }
    for (int k = i; k < argc; k++) {
        if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
            ex = usage_op(stdout, c.op) < 0 ? TV_EXIT_INTERNAL : TV_EXIT_OK;
            goto out;
        }
    }
    r = cli_request_init(&req, c.op);
    if (r < 0) {
        ex = r == CLI_ERR_NO_MEMORY ? TV_EXIT_INTERNAL : TV_EXIT_USAGE;
        goto out;
    }
    ex = parse_fields(&c, argc, argv, i, &req);
    if (ex != TV_EXIT_OK)
        goto out;
    apply_env(&c);
    if (c.blob_path != NULL && (ex = read_blob(&c, &req)) != TV_EXIT_OK)
        goto out;
    ex = read_secrets(&c, &req);
    if (ex != TV_EXIT_OK)
        goto out;
    r = cli_request_check(&req, why);
    if (r < 0) {
        ex = r == CLI_ERR_NO_MEMORY ? TV_EXIT_INTERNAL : usage_error(&c, why);
        goto out;
    }
    ex = make_config(&c, &cfg, host);
    if (ex != TV_EXIT_OK)
        goto out;

    resp_schema = api_schema_response(c.op->opcode);
    resp = resp_schema != NULL ? calloc(1, resp_schema->size) : NULL;
    if (resp == NULL) {
        ex = TV_EXIT_INTERNAL;
        goto out;
    }
    r = api_client_new(&client, &cfg);
    if (r == 0)
        r = api_client_call(client, c.op->opcode, req.msg, resp, &err);
    if (r < 0) {
        ex = call_failed(&c, r, &err);
        goto out;
    }
    ex = print_answer(&c, resp_schema, resp);
out:
    api_client_free(client);
    if (resp != NULL) {
        api_msg_cleanup(resp_schema, resp);
        free(resp);
    }
    cli_request_cleanup(&req);
    OPENSSL_cleanse(&err, sizeof(err));
    return ex;
}

int
main(int argc, char **argv)
{
    int ex;

    json_set_alloc_funcs(wipe_malloc, wipe_free);
    if (setvbuf(stdout, stdout_buf, _IOFBF, sizeof(stdout_buf)) != 0)
        return TV_EXIT_INTERNAL;
    ex = run(argc, argv);
    if (fflush(stdout) != 0 && ex == TV_EXIT_OK)
        ex = TV_EXIT_INTERNAL;
    OPENSSL_cleanse(stdout_buf, sizeof(stdout_buf));
    return ex;
}
