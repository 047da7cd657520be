/*
 * test_log.c - log lines: format, levels, and escaping that no value can
 * break out of.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#include "vault/log.h"

static int fds[2];

static int
setup(void **state)
{
    (void)state;
    if (pipe(fds) != 0)
        return -1;
    vlog_set_fd(fds[1]);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    vlog_set_fd(2);
    close(fds[0]);
    close(fds[1]);
    return 0;
}

/* Reads what one line wrote. */
static size_t
take(char *out, size_t cap)
{
    ssize_t n = read(fds[0], out, cap - 1);

    assert_true(n > 0);
    out[n] = '\0';
    return (size_t)n;
}

static void
test_format(void **state)
{
    struct vlog_line l;
    char buf[VLOG_LINE_MAX + 16];

    (void)state;
    vlog_set_level(VAULT_LOG_INFO);
    assert_true(vlog_begin(&l, VAULT_LOG_INFO, "request"));
    vlog_str(&l, "op", "card_store");
    vlog_u64(&l, "rid", 17);
    vlog_i64(&l, "code", -30798);
    vlog_ms(&l, "ms", 2414999);
    vlog_end(&l);
    take(buf, sizeof(buf));
    assert_memory_equal(buf, "ts=", 3);
    assert_int_equal(buf[3 + 4], '-');
    assert_non_null(strstr(buf, "Z level=info event=request op=card_store rid=17 code=-30798 ms=2.41\n"));
    assert_int_equal(strchr(buf, '\n') - buf + 1, (long)strlen(buf)); /* one line */
}

static void
test_levels(void **state)
{
    struct vlog_line l;
    char buf[256];

    (void)state;
    vlog_set_level(VAULT_LOG_WARN);
    assert_false(vlog_begin(&l, VAULT_LOG_INFO, "quiet"));
    vlog_str(&l, "k", "v");
    vlog_end(&l); /* writes nothing */
    vlog_msg(VAULT_LOG_ERROR, "loud", "reason", "disk");
    take(buf, sizeof(buf));
    assert_non_null(strstr(buf, "level=error event=loud reason=disk\n"));
    assert_null(strstr(buf, "quiet"));
    assert_int_equal(vlog_get_level(), VAULT_LOG_WARN);
    vlog_set_level(VAULT_LOG_INFO);
}

static void
test_escaping(void **state)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"plain", "v=plain"},
        {"two words", "v=\"two words\""},
        {"a=b", "v=\"a=b\""},
        {"say \"hi\"", "v=\"say \\\"hi\\\"\""},
        {"back\\slash", "v=\"back\\\\slash\""},
        {"line\nlevel=error event=forged", "v=\"line\\x0alevel=error event=forged\""},
        {"tab\there", "v=\"tab\\x09here\""},
        {"caf\xc3\xa9", "v=\"caf\\xc3\\xa9\""},
        {"", "v=\"\""},
    };
    struct vlog_line l;
    char buf[512];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_true(vlog_begin(&l, VAULT_LOG_INFO, "e"));
        vlog_str(&l, "v", cases[i].in);
        vlog_end(&l);
        take(buf, sizeof(buf));
        assert_non_null(strstr(buf, cases[i].out));
        /* Nothing but the final newline ends the line. */
        assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1);
    }
}

static void
test_truncation(void **state)
{
    static char big[3 * VLOG_LINE_MAX];
    struct vlog_line l;
    char buf[VLOG_LINE_MAX + 16];
    size_t n;

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    assert_true(vlog_begin(&l, VAULT_LOG_INFO, "big"));
    vlog_str(&l, "a", big);
    vlog_str(&l, "b", "after");
    vlog_end(&l);
    n = take(buf, sizeof(buf));
    assert_true(n <= VLOG_LINE_MAX);
    assert_non_null(strstr(buf, " truncated=1\n"));
    assert_null(strstr(buf, "after"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_truncation),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
