/*
 * test_cli.c - the tokenvault program, run as a user runs it, against an
 * in-process TLS test server.
 *
 * For every opcode: an argv built from the request schema (sample values
 * formatted as CLI text, secrets on stdin, the packet in a file); the server
 * checks the request it decodes equals the sample, answers the sample
 * response, and the --json output must equal it. Then every exit code of a
 * status class, the JSON error object, usage errors that must never reach
 * the server, a refused connection, and --help of every subcommand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "api/frame.h"
#include "tests/support/sample.h"
#include "tests/support/test_server.h"
#include "tools/cli_args.h"
#include "tools/cli_format.h"

extern char **environ;

/* The sample seed of the answer: the request id of a fresh CLI's first call. */
#define FIRST_REQUEST_ID 1u
/* The seed of the request samples the argv is built from. */
#define REQUEST_SEED 5u
/* Most arguments of one CLI run: two per request field plus the globals. */
#define ARGV_MAX (2 * API_FIELDS_MAX + 24)
/* Longest captured output of one run; the largest answer is a few KiB. */
#define OUTPUT_MAX 65536u

static char dir[64];
static char ca[96], cert[96], key[96], server_arg[64];
static struct tv_test_server *server;
/* The name make_certs.sh puts in the server certificate. */
#define TV_TEST_SERVER_NAME "localhost"

/* What the handler does: answer the sample (0), this error status, or
 * nothing at all (ANSWER_SILENT), so that the client's deadline passes. */
static _Atomic unsigned answer_status;
#define ANSWER_SILENT 0xFFFFu
/* With an error: put a rule and a retry time into the error body too. */
static _Atomic bool answer_rule;
/* Requests the server has seen; usage errors must leave it unchanged. */
static _Atomic unsigned requests_seen;
/* Set when a request differs from the sample the argv was built from. */
static _Atomic bool request_mismatch;

/* ---- the server side ------------------------------------------------------------------ */

/* Whether the decoded request equals the sample: every member byte for byte,
 * the packet by content. */
static bool
request_matches(const struct api_frame *f)
{
    const struct api_schema *s = api_schema_request(f->hdr.opcode);
    void *want = calloc(1, s->size);
    bool same = want != NULL && f->schema == s &&
                tv_sample_fill(s, want, REQUEST_SEED, TV_SAMPLE_ALL) == 0;

    for (size_t i = 0; same && i < s->num_fields; i++) {
        const struct api_field *fld = &s->fields[i];
        const uint8_t *a = want, *b = f->msg;

        if (fld->flags & API_FIELD_OPTIONAL)
            same = *(const bool *)(a + fld->aux) == *(const bool *)(b + fld->aux);
        if (same && api_tag_info(fld->tag)->type == API_T_BLOB) {
            struct api_slice x, y;

            memcpy(&x, a + fld->off, sizeof(x));
            memcpy(&y, b + fld->off, sizeof(y));
            same = x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
        } else if (same) {
            same = memcmp(a + fld->off, b + fld->off, fld->size) == 0;
        }
    }
    if (want != NULL)
        api_msg_cleanup(s, want);
    free(want);
    return same;
}

static int
handler(void *ctx, const struct api_frame *req, struct api_writer *out)
{
    unsigned status = atomic_load(&answer_status);
    struct api_header h = req->hdr;
    struct api_error_resp e;

    atomic_fetch_add(&requests_seen, 1);
    if (status == ANSWER_SILENT)
        return 0;
    if (status == 0) {
        if (!request_matches(req)) {
            atomic_store(&request_mismatch, true);
            return api_frame_write_error(out, &req->hdr, API_STATUS_INTERNAL, 0,
                                         "request differs from the sample");
        }
        return tv_test_handler_sample(ctx, req, out);
    }
    if (!atomic_load(&answer_rule))
        return api_frame_write_error(out, &req->hdr, status, API_TAG_MERCHANT, "test says no");
    memset(&e, 0, sizeof(e));
    strcpy(e.message, "mandate rule");
    e.has_rule = true;
    strcpy(e.rule, "RecurringMaxAmount");
    e.has_retry_after_ms = true;
    e.retry_after_ms = 250;
    h.version = API_VERSION;
    h.flags = API_FLAG_RESPONSE;
    h.status = (uint16_t)status;
    return api_frame_write(out, &h, api_schema_error(), &e, NULL);
}

static int
group_setup(void **state)
{
    struct tv_test_server_config cfg = {0};
    (void)state;

    /* The CLI reads these; the test says everything on its command line. */
    for (const char *const *v = (const char *const[]){"TOKENVAULT_SERVER", "TOKENVAULT_UNIX",
                                                      "TOKENVAULT_CA", "TOKENVAULT_CERT",
                                                      "TOKENVAULT_KEY", "TOKENVAULT_SERVER_NAME",
                                                      "TOKENVAULT_TIMEOUT", "TOKENVAULT_JSON",
                                                      "TOKENVAULT_SECRETS_FILE", NULL};
         *v != NULL; v++)
        unsetenv(*v);
    snprintf(dir, sizeof(dir), "/tmp/tv-cli-XXXXXX");
    if (tv_test_certs(dir) != 0)
        return -1;
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(cert, sizeof(cert), "%s/client.pem", dir);
    snprintf(key, sizeof(key), "%s/client.key", dir);
    cfg.dir = dir;
    cfg.handler = handler;
    if (tv_test_server_start(&server, &cfg) != 0)
        return -1;
    snprintf(server_arg, sizeof(server_arg), "127.0.0.1:%u",
             (unsigned)tv_test_server_port(server));
    return 0;
}

static int
group_teardown(void **state)
{
    char cmd[128];
    (void)state;

    tv_test_server_stop(server);
    server = NULL;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- running the program ------------------------------------------------------------- */

struct run {
    int exit_code;
    char out[OUTPUT_MAX];
    char err[OUTPUT_MAX];
};

struct args {
    const char *v[ARGV_MAX + 1];
    size_t n;
    char *owned[ARGV_MAX]; /* strings to free */
    size_t num_owned;
};

static void
arg(struct args *a, const char *s)
{
    assert_true(a->n < ARGV_MAX);
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void
arg_owned(struct args *a, char *s)
{
    assert_non_null(s);
    assert_true(a->num_owned < ARGV_MAX);
    a->owned[a->num_owned++] = s;
    arg(a, s);
}

static void
args_free(struct args *a)
{
    for (size_t i = 0; i < a->num_owned; i++)
        free(a->owned[i]);
    memset(a, 0, sizeof(*a));
}

/* The program and the connection options, then |json| or not. */
static void
args_start(struct args *a, bool json)
{
    memset(a, 0, sizeof(*a));
    arg(a, TV_CLI_PATH);
    arg(a, "--server");
    arg(a, server_arg);
    arg(a, "--ca");
    arg(a, ca);
    arg(a, "--cert");
    arg(a, cert);
    arg(a, "--key");
    arg(a, key);
    arg(a, "--server-name");
    arg(a, TV_TEST_SERVER_NAME);
    if (json)
        arg(a, "--json");
}

static void
slurp(const char *path, char *buf)
{
    FILE *f = fopen(path, "r");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, OUTPUT_MAX - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Runs the program with |a| and |input| on stdin; fills |r|. */
static void
run_cli(const struct args *a, const char *input, struct run *r)
{
    char in[128], out[128], err[128];
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status = 0;
    FILE *f;

    snprintf(in, sizeof(in), "%s/stdin", dir);
    snprintf(out, sizeof(out), "%s/stdout", dir);
    snprintf(err, sizeof(err), "%s/stderr", dir);
    f = fopen(in, "w");
    assert_non_null(f);
    assert_int_equal(fputs(input != NULL ? input : "", f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 0, in, O_RDONLY, 0), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC,
                                                      0600),
                     0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC,
                                                      0600),
                     0);
    assert_int_equal(posix_spawn(&pid, TV_CLI_PATH, &fa, NULL, (char *const *)a->v, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    r->exit_code = WEXITSTATUS(status);
    slurp(out, r->out);
    slurp(err, r->err);
}

static json_t *
parse_json(const struct run *r)
{
    json_error_t jerr;
    json_t *j = json_loads(r->out, 0, &jerr);

    if (j == NULL)
        fail_msg("not JSON (%s): %s / stderr: %s", jerr.text, r->out, r->err);
    return j;
}

/* ---- every operation ------------------------------------------------------------------ */

/* Appends the options (and the secret lines to |secrets|) of every field of
 * the request sample |msg| of |op|. */
static void
args_for_request(struct args *a, const struct cli_op *op, const void *msg, char *secrets,
                 size_t secrets_len)
{
    const struct api_schema *s = api_schema_request(op->opcode);

    secrets[0] = '\0';
    for (size_t i = 0; i < s->num_fields; i++) {
        const struct api_field *f = &s->fields[i];
        const struct api_tag_info *info = api_tag_info(f->tag);
        char name[CLI_OPTION_NAME_MAX], path[128];
        char *text = NULL, *opt;

        if (!api_field_present(f, msg))
            continue;
        assert_int_equal(cli_option_name(name, f->tag), 0);
        if (info->type == API_T_BLOB) {
            struct api_slice sl;
            FILE *fp;

            memcpy(&sl, (const uint8_t *)msg + f->off, sizeof(sl));
            snprintf(path, sizeof(path), "%s/%s.bin", dir, name);
            fp = fopen(path, "w");
            assert_non_null(fp);
            assert_int_equal(fwrite(sl.data, 1, sl.len, fp), sl.len);
            assert_int_equal(fclose(fp), 0);
            assert_true(asprintf(&opt, "--%s", name) > 0);
            arg_owned(a, opt);
            arg_owned(a, strdup(path));
            continue;
        }
        assert_int_equal(cli_value_format(&text, f, msg), 0);
        if (info->flags & API_TAG_SECRET) {
            size_t used = strlen(secrets);

            assert_true(snprintf(secrets + used, secrets_len - used, "%s=%s\n", name, text) <
                        (int)(secrets_len - used));
        } else {
            assert_true(asprintf(&opt, "--%s", name) > 0);
            arg_owned(a, opt);
            arg_owned(a, strdup(text));
        }
        cli_text_free(text);
    }
}

/* The JSON value |v| as the text the CLI accepts for a field. */
static char *
json_text(const json_t *v)
{
    char *s = NULL;

    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_boolean(v))
        return strdup(json_is_true(v) ? "true" : "false");
    if (json_is_integer(v) && asprintf(&s, "%lld", (long long)json_integer_value(v)) > 0)
        return s;
    fail_msg("unexpected JSON value type %d", v != NULL ? (int)json_typeof(v) : -1);
    return NULL;
}

/* Independent of cli_msg_json: every key of the output parsed back through
 * the CLI's value parser must give the sample's member bytes, and nothing
 * else may be in the object. */
static void
check_json_fields(const json_t *obj, const struct api_schema *s, const void *msg)
{
    size_t num = 0, present = 0;
    struct cli_request r = {cli_op_all(&num), s, calloc(1, s->size), 0, NULL, 0};
    char why[CLI_WHY_MAX];

    assert_non_null(r.msg);
    assert_true(json_is_object(obj));
    for (size_t i = 0; i < s->num_fields; i++) {
        const struct api_field *f = &s->fields[i];
        const struct api_tag_info *info = api_tag_info(f->tag);
        const uint8_t *a = msg;
        const json_t *v = json_object_get(obj, info->wire);
        char *text;

        if (!api_field_present(f, a)) {
            assert_null(v);
            continue;
        }
        present++;
        if (v == NULL)
            fail_msg("%s missing from the output", info->wire);
        if (info->type == API_T_LIST) {
            const uint8_t *items;
            size_t n;

            memcpy(&items, a + f->off, sizeof(items));
            memcpy(&n, a + f->aux, sizeof(n));
            assert_true(json_is_array(v));
            assert_int_equal(json_array_size(v), n);
            for (size_t k = 0; k < n; k++)
                check_json_fields(json_array_get(v, k), f->item, items + k * f->item->size);
            continue;
        }
        text = json_text(v);
        assert_int_equal(cli_request_set(&r, f, text,
                                         (info->flags & API_TAG_SECRET) ? CLI_SRC_SECRET
                                                                        : CLI_SRC_ARGV,
                                         why),
                         0);
        assert_memory_equal(a + f->off, (const uint8_t *)r.msg + f->off, f->size);
        free(text);
    }
    assert_int_equal(json_object_size(obj), present);
    cli_request_cleanup(&r);
}

static void
run_op(const struct cli_op *op, bool json, struct run *r)
{
    const struct api_schema *s = api_schema_request(op->opcode);
    void *msg = calloc(1, s->size);
    char secrets[2048];
    struct args a;

    assert_non_null(msg);
    assert_int_equal(tv_sample_fill(s, msg, REQUEST_SEED, TV_SAMPLE_ALL), 0);
    args_start(&a, json);
    arg(&a, op->area);
    arg(&a, op->verb);
    args_for_request(&a, op, msg, secrets, sizeof(secrets));
    run_cli(&a, secrets, r);
    args_free(&a);
    api_msg_cleanup(s, msg);
    free(msg);
}

static void
test_every_operation(void **state)
{
    static struct run r;
    size_t num = 0;
    const struct cli_op *ops = cli_op_all(&num);
    (void)state;

    atomic_store(&answer_status, 0);
    for (size_t i = 0; i < num; i++) {
        const struct api_schema *rs = api_schema_response(ops[i].opcode);
        void *want = calloc(1, rs->size);
        json_t *got, *expect = NULL;

        assert_non_null(want);
        assert_int_equal(tv_sample_fill(rs, want, FIRST_REQUEST_ID, TV_SAMPLE_ALL), 0);
        run_op(&ops[i], true, &r);
        if (r.exit_code != 0)
            fail_msg("%s %s: exit %d, stdout %s, stderr %s", ops[i].area, ops[i].verb,
                     r.exit_code, r.out, r.err);
        assert_false(atomic_load(&request_mismatch));
        got = parse_json(&r);
        assert_int_equal(cli_msg_json(&expect, rs, want), 0);
        if (!json_equal(got, expect))
            fail_msg("%s %s: output %s", ops[i].area, ops[i].verb, r.out);
        check_json_fields(got, rs, want);
        json_decref(got);
        json_decref(expect);

        /* The same answer as lines: each top-level value on its own line. */
        run_op(&ops[i], false, &r);
        assert_int_equal(r.exit_code, 0);
        for (size_t k = 0; k < rs->num_fields; k++) {
            const struct api_field *f = &rs->fields[k];
            const struct api_tag_info *info = api_tag_info(f->tag);
            char line[160], *text = NULL;

            if (!api_field_present(f, want))
                continue;
            if (info->type == API_T_LIST) {
                snprintf(line, sizeof(line), "%s[1]:\n", info->wire);
            } else {
                assert_int_equal(cli_value_format(&text, f, want), 0);
                snprintf(line, sizeof(line), "%s: %.100s", info->wire, text);
                cli_text_free(text);
            }
            if (strstr(r.out, line) == NULL)
                fail_msg("%s %s: no '%s' in %s", ops[i].area, ops[i].verb, line, r.out);
        }
        api_msg_cleanup(rs, want);
        free(want);
    }
}

/* ---- errors ------------------------------------------------------------------------------ */

static void
test_exit_codes(void **state)
{
    static const struct {
        unsigned status;
        int exit_code;
    } cases[] = {
        {API_STATUS_DENIED, 4},      {API_STATUS_NOT_FOUND, 5},    {API_STATUS_LIMIT_EXCEEDED, 6},
        {API_STATUS_CONFLICT, 6},    {API_STATUS_OVERLOADED, 7},   {API_STATUS_SEALED, 7},
        {API_STATUS_BAD_VALUE, 8},   {API_STATUS_CARD_INVALID, 8}, {API_STATUS_INTERNAL, 1},
    };
    static struct run r;
    const struct cli_op *op = cli_op_find("card", "get");
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j;

        atomic_store(&answer_status, cases[i].status);
        atomic_store(&answer_rule, false);
        run_op(op, true, &r);
        assert_int_equal(r.exit_code, cases[i].exit_code);
        j = parse_json(&r);
        assert_string_equal(json_string_value(json_object_get(j, "status")),
                            api_status_name(cases[i].status));
        assert_string_equal(json_string_value(json_object_get(j, "message")), "test says no");
        assert_string_equal(json_string_value(json_object_get(j, "field")), "merchant");
        assert_null(json_object_get(j, "rule"));
        json_decref(j);

        /* Human mode: one line on stderr, nothing on stdout. */
        run_op(op, false, &r);
        assert_int_equal(r.exit_code, cases[i].exit_code);
        assert_string_equal(r.out, "");
        assert_non_null(strstr(r.err, "tokenvault: "));
        assert_non_null(strstr(r.err, api_status_name(cases[i].status)));
        assert_non_null(strstr(r.err, ": test says no (field merchant)"));
    }

    atomic_store(&answer_status, API_STATUS_LIMIT_EXCEEDED);
    atomic_store(&answer_rule, true);
    run_op(cli_op_find("mit", "authorize"), true, &r);
    assert_int_equal(r.exit_code, 6);
    {
        json_t *j = parse_json(&r);

        assert_string_equal(json_string_value(json_object_get(j, "status")), "LIMIT_EXCEEDED");
        assert_string_equal(json_string_value(json_object_get(j, "rule")), "RecurringMaxAmount");
        assert_int_equal(json_integer_value(json_object_get(j, "retryAfterMs")), 250);
        assert_null(json_object_get(j, "field"));
        json_decref(j);
    }
    run_op(cli_op_find("mit", "authorize"), false, &r);
    assert_non_null(strstr(r.err, "tokenvault: LIMIT_EXCEEDED: mandate rule (rule "
                                  "RecurringMaxAmount); retry after 250 ms"));
    atomic_store(&answer_rule, false);
    atomic_store(&answer_status, 0);
}

/* Runs |extra| after the connection options, expects exit 2, and that the
 * server saw nothing. */
static void
expect_usage(const char *const *extra, const char *input, const char *err_has)
{
    static struct run r;
    unsigned before = atomic_load(&requests_seen);
    struct args a;

    args_start(&a, false);
    for (; *extra != NULL; extra++)
        arg(&a, *extra);
    run_cli(&a, input, &r);
    args_free(&a);
    if (r.exit_code != 2 || strstr(r.err, err_has) == NULL)
        fail_msg("exit %d, stderr '%s', wanted '%s'", r.exit_code, r.err, err_has);
    assert_string_equal(r.out, "");
    assert_int_equal(atomic_load(&requests_seen), before);
}

#define USAGE(input, has, ...) expect_usage((const char *const[]){__VA_ARGS__, NULL}, input, has)

static void
test_usage_errors(void **state)
{
    static const char pan[] = "pan=4111111111111111\n";
    char path[128];
    FILE *f;
    (void)state;

    USAGE(NULL, "unknown command", "cards", "store");
    USAGE(NULL, "card has no such verb", "card", "steal");
    USAGE(NULL, "unknown option", "card", "get", "--merchant", "m", "--token", "t", "--nope", "1");
    USAGE(NULL, "unexpected argument", "card", "get", "--merchant", "m", "stray");
    USAGE(NULL, "--token: required option missing", "card", "get", "--merchant", "m");
    USAGE(NULL, "--merchant needs a value", "card", "get", "--token", "t", "--merchant");
    USAGE(NULL, "--purpose: not one of authorization, refund, account_update", "card", "reveal",
          "--merchant", "m", "--token", "t", "--purpose", "curiosity");
    USAGE(NULL, "--amount: must be a decimal integer in 0..999999999999999", "qr", "issue",
          "--merchant", "m", "--order-id", "o", "--currency", "EUR", "--lifetime", "60",
          "--amount", "1000000000000000");
    USAGE(NULL, "--amount: must be a decimal integer", "qr", "issue", "--amount", "-5");
    USAGE(NULL, "--recurring-max-date: must be a real date", "mandate", "create",
          "--recurring-max-date", "31.02.2028");
    USAGE(NULL, "--date: must be a real date", "mit", "authorize", "--date", "2028-1-1");
    USAGE(NULL, "--merchant: given twice", "card", "get", "--merchant", "m", "--merchant", "n");
    USAGE(NULL, "--timeout: milliseconds", "--timeout", "soon", "service", "ping");

    /* The PAN on argv is refused before anything is read or sent, and the
     * message does not repeat it. */
    USAGE(pan, "--pan: secret", "card", "store", "--merchant", "m", "--customer-number", "c",
          "--exp-month", "1", "--exp-year", "2030", "--consent", "true", "--verification",
          "none", "--pan", "4111111111111111");
    USAGE(pan, "--pan: secret", "card", "store", "--pan=4111111111111111");
    USAGE(NULL, "--cvc: secret", "cit", "authorize", "--cvc", "123");
    USAGE(NULL, "--share: secret", "officer", "unseal", "--officer", "o1", "--share", "0102");
    USAGE("", "--pan: required: give it on stdin", "card", "store", "--merchant", "m",
          "--customer-number", "c", "--exp-month", "1", "--exp-year", "2030", "--consent",
          "true", "--verification", "none");
    USAGE("pan=4111111111111111\nmerchant=x\n", "--merchant: not a secret", "card", "store");
    USAGE("4111111111111111\n", "secrets line 1: expected name=value", "card", "store");
    USAGE("pan=41111111111111112222\n", "--pan: must be 12..19", "card", "store");

    /* A secrets file others can read is refused. */
    snprintf(path, sizeof(path), "%s/secrets", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(pan, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, 0644), 0);
    USAGE(NULL, "readable by group or others", "--secrets-file", path, "card", "store");
    unlink(path);
}

static void
test_connection_refused(void **state)
{
    static struct run r;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    char where[32];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct args a;
    json_t *j;
    (void)state;

    /* A port that was free a moment ago and has no listener now. */
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    snprintf(where, sizeof(where), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    args_start(&a, true);
    a.v[2] = where;
    arg(&a, "service");
    arg(&a, "ping");
    run_cli(&a, NULL, &r);
    args_free(&a);
    assert_int_equal(r.exit_code, 3);
    j = parse_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "API_ERR_CONNECT");
    json_decref(j);

    /* Configuration: a CA file that does not exist. */
    args_start(&a, false);
    a.v[4] = "/nonexistent/ca.pem";
    arg(&a, "service");
    arg(&a, "status");
    run_cli(&a, NULL, &r);
    args_free(&a);
    assert_int_equal(r.exit_code, 3);
    assert_non_null(strstr(r.err, "API_ERR_CONFIG"));
}

/* The same request through every other way of saying it: the environment
 * instead of options, a 0600 secrets file instead of stdin, the packet on
 * stdin, the officer socket. */
static void
test_environment_and_inputs(void **state)
{
    static struct run r;
    struct tv_test_server_config cfg = {0};
    struct tv_test_server *local = NULL;
    char path[128], sock[128], packet[128];
    struct args a;
    json_t *j;
    FILE *f;
    (void)state;

    atomic_store(&answer_status, 0);
    setenv("TOKENVAULT_SERVER", server_arg, 1);
    setenv("TOKENVAULT_CA", ca, 1);
    setenv("TOKENVAULT_CERT", cert, 1);
    setenv("TOKENVAULT_KEY", key, 1);
    setenv("TOKENVAULT_SERVER_NAME", TV_TEST_SERVER_NAME, 1);
    setenv("TOKENVAULT_JSON", "1", 1);
    memset(&a, 0, sizeof(a));
    arg(&a, TV_CLI_PATH);
    arg(&a, "service");
    arg(&a, "status");
    run_cli(&a, NULL, &r);
    assert_int_equal(r.exit_code, 0);
    j = parse_json(&r);
    assert_true(json_is_boolean(json_object_get(j, "sealed")));
    json_decref(j);

    /* Secrets from a 0600 file; stdin is not read then. */
    snprintf(path, sizeof(path), "%s/secrets", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("share=0102030405\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, 0600), 0);
    memset(&a, 0, sizeof(a));
    arg(&a, TV_CLI_PATH);
    arg(&a, "--secrets-file");
    arg(&a, path);
    arg(&a, "officer");
    arg(&a, "unseal");
    arg(&a, "--officer");
    arg(&a, "o1");
    atomic_store(&answer_status, API_STATUS_SHARE_REJECTED);
    run_cli(&a, "share=zz\n", &r);
    assert_int_equal(r.exit_code, 6);
    unlink(path);

    /* The packet on stdin ("-"), and a packet over the limit. */
    memset(&a, 0, sizeof(a));
    arg(&a, TV_CLI_PATH);
    arg(&a, "wallet");
    arg(&a, "decrypt");
    arg(&a, "--merchant");
    arg(&a, "m1");
    arg(&a, "--wallet");
    arg(&a, "google_pay");
    arg(&a, "--packet");
    arg(&a, "-");
    atomic_store(&answer_status, API_STATUS_SIGNATURE_INVALID);
    run_cli(&a, "{\"protocolVersion\":\"ECv2\"}", &r);
    assert_int_equal(r.exit_code, 6);
    snprintf(packet, sizeof(packet), "%s/big", dir);
    f = fopen(packet, "w");
    assert_non_null(f);
    for (unsigned i = 0; i <= API_PACKET_MAX; i++)
        fputc('x', f);
    assert_int_equal(fclose(f), 0);
    a.v[a.n - 1] = packet;
    run_cli(&a, NULL, &r);
    assert_int_equal(r.exit_code, 2);
    unlink(packet);

    /* --unix on argv hides TOKENVAULT_SERVER: the officer socket, no TLS. */
    snprintf(sock, sizeof(sock), "%s/officer.sock", dir);
    cfg.dir = dir;
    cfg.unix_path = sock;
    cfg.handler = handler;
    assert_int_equal(tv_test_server_start(&local, &cfg), 0);
    atomic_store(&answer_status, 0);
    memset(&a, 0, sizeof(a));
    arg(&a, TV_CLI_PATH);
    arg(&a, "--unix");
    arg(&a, sock);
    arg(&a, "officer");
    arg(&a, "keys");
    run_cli(&a, NULL, &r);
    assert_int_equal(r.exit_code, 0);
    j = parse_json(&r);
    assert_true(json_is_array(json_object_get(j, "keys")));
    json_decref(j);
    tv_test_server_stop(local);

    /* Both places named on argv: a usage error. */
    arg(&a, "--server");
    arg(&a, server_arg);
    run_cli(&a, NULL, &r);
    assert_int_equal(r.exit_code, 2);

    for (const char *const *v = (const char *const[]){"TOKENVAULT_SERVER", "TOKENVAULT_CA",
                                                      "TOKENVAULT_CERT", "TOKENVAULT_KEY",
                                                      "TOKENVAULT_SERVER_NAME", "TOKENVAULT_JSON",
                                                      NULL};
         *v != NULL; v++)
        unsetenv(*v);
    atomic_store(&answer_status, 0);
}

/* A server that never answers: the deadline ends the call, exit 3. */
static void
test_timeout(void **state)
{
    static struct run r;
    struct args a;
    json_t *j;
    (void)state;

    atomic_store(&answer_status, ANSWER_SILENT);
    args_start(&a, true);
    arg(&a, "--timeout");
    arg(&a, "300");
    arg(&a, "service");
    arg(&a, "ping");
    run_cli(&a, NULL, &r);
    args_free(&a);
    atomic_store(&answer_status, 0);
    assert_int_equal(r.exit_code, 3);
    j = parse_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "API_ERR_TIMEOUT");
    json_decref(j);
}

static void
test_help(void **state)
{
    static struct run r;
    size_t num = 0;
    const struct cli_op *ops = cli_op_all(&num);
    struct args a;
    (void)state;

    memset(&a, 0, sizeof(a));
    arg(&a, TV_CLI_PATH);
    arg(&a, "--help");
    run_cli(&a, NULL, &r);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "exit codes:"));
    assert_non_null(strstr(r.out, "TOKENVAULT_SERVER"));
    for (size_t i = 0; i < num; i++) {
        char cmd[64];

        snprintf(cmd, sizeof(cmd), "  %s %s ", ops[i].area, ops[i].verb);
        assert_non_null(strstr(r.out, cmd));
    }
    for (size_t i = 0; i < num; i++) {
        const struct api_schema *s = api_schema_request(ops[i].opcode);
        char role[64];

        memset(&a, 0, sizeof(a));
        arg(&a, TV_CLI_PATH);
        arg(&a, ops[i].area);
        arg(&a, ops[i].verb);
        arg(&a, "--help");
        run_cli(&a, NULL, &r);
        assert_int_equal(r.exit_code, 0);
        snprintf(role, sizeof(role), "role required: %s\n", api_role_name(ops[i].role));
        assert_non_null(strstr(r.out, role));
        for (size_t k = 0; k < s->num_fields; k++) {
            const struct api_tag_info *info = api_tag_info(s->fields[k].tag);
            char name[CLI_OPTION_NAME_MAX], want[128];

            assert_int_equal(cli_option_name(name, s->fields[k].tag), 0);
            snprintf(want, sizeof(want), "--%s (%s)", name, info->wire);
            if (strstr(r.out, want) == NULL)
                fail_msg("%s %s --help: no '%s'", ops[i].area, ops[i].verb, want);
        }
    }
    memset(&a, 0, sizeof(a));
    arg(&a, TV_CLI_PATH);
    arg(&a, "card");
    arg(&a, "store");
    arg(&a, "--help");
    run_cli(&a, NULL, &r);
    assert_non_null(strstr(r.out, "--customer-number (CustomerNumber)\n      required; id: 1..32"));
    assert_non_null(strstr(r.out, "--pan (pan)\n      required; digits: 12..19; secret"));
    assert_non_null(strstr(r.out, "enum: none | cvc2_3ds | 3ds | cvc2 | device"));
    memset(&a, 0, sizeof(a));
    arg(&a, TV_CLI_PATH);
    arg(&a, "card");
    arg(&a, "--help");
    run_cli(&a, NULL, &r);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "  reveal "));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_operation),
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_environment_and_inputs),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_help),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
