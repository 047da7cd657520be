/*
 * test_pin.c - the PIN file source refuses every file an attacker or a
 * careless operator could leave: readable by others, not ours, a link, empty,
 * oversized; it accepts 0600/0400 with one trailing newline.
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

#include "hsm/hsm.h"
#include "tests/support/token.h"

static char dir[64];
static char path[128];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tv-pin-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/pin", dir);
    return 0;
}

static int
teardown(void **state)
{
    char link[160];
    (void)state;
    snprintf(link, sizeof(link), "%s/link", dir);
    unlink(link);
    unlink(path);
    rmdir(dir);
    return 0;
}

static int
read_pin(const char *p, uint8_t *buf, size_t *len)
{
    hsm_pin_source *src = NULL;
    int r = hsm_pin_source_file(&src, p);

    if (r == HSM_OK)
        r = hsm_pin_source_read(src, buf, HSM_PIN_BUF, len);
    hsm_pin_source_free(src);
    return r;
}

static void
test_good_files(void **state)
{
    uint8_t buf[HSM_PIN_BUF];
    size_t len = 0;
    (void)state;

    assert_int_equal(tv_write_file(path, "123456\n", 0600), 0);
    assert_int_equal(read_pin(path, buf, &len), HSM_OK);
    assert_int_equal(len, 6);
    assert_memory_equal(buf, "123456", 6);
    assert_int_equal(tv_write_file(path, "abc def", 0400), 0);
    assert_int_equal(read_pin(path, buf, &len), HSM_OK);
    assert_int_equal(len, 7);
    assert_int_equal(tv_write_file(path, "crlf\r\n", 0600), 0);
    assert_int_equal(read_pin(path, buf, &len), HSM_OK);
    assert_int_equal(len, 4);
    unlink(path);
}

static void
test_hostile_files(void **state)
{
    uint8_t buf[HSM_PIN_BUF];
    char big[HSM_PIN_MAX + 3], link[160];
    size_t len = 0;
    (void)state;

    assert_int_equal(tv_write_file(path, "123456\n", 0644), 0);
    assert_int_equal(read_pin(path, buf, &len), HSM_ERR_PIN_SOURCE);
    assert_non_null(strstr(hsm_last_detail(), "mode 644"));
    assert_int_equal(tv_write_file(path, "123456\n", 0640), 0);
    assert_int_equal(read_pin(path, buf, &len), HSM_ERR_PIN_SOURCE);
    assert_int_equal(tv_write_file(path, "123456\n", 0602), 0);
    assert_int_equal(read_pin(path, buf, &len), HSM_ERR_PIN_SOURCE);
    /* The error names the file and the reason, never the PIN. */
    assert_null(strstr(hsm_last_detail(), "123456"));

    assert_int_equal(tv_write_file(path, "\n", 0600), 0);
    assert_int_equal(read_pin(path, buf, &len), HSM_ERR_PIN_SOURCE);
    assert_int_equal(tv_write_file(path, "", 0600), 0);
    assert_int_equal(read_pin(path, buf, &len), HSM_ERR_PIN_SOURCE);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(tv_write_file(path, big, 0600), 0);
    assert_int_equal(read_pin(path, buf, &len), HSM_ERR_PIN_SOURCE);
    big[HSM_PIN_MAX] = '\0';
    assert_int_equal(tv_write_file(path, big, 0600), 0);
    assert_int_equal(read_pin(path, buf, &len), HSM_OK); /* exactly the limit */
    assert_int_equal(len, HSM_PIN_MAX);

    /* A symbolic link is not followed (O_NOFOLLOW). */
    snprintf(link, sizeof(link), "%s/link", dir);
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(read_pin(link, buf, &len), HSM_ERR_PIN_SOURCE);
    /* Missing file, a directory. */
    assert_int_equal(read_pin("/nonexistent/pin", buf, &len), HSM_ERR_PIN_SOURCE);
    assert_int_equal(read_pin(dir, buf, &len), HSM_ERR_PIN_SOURCE);
    /* Owned by another user (runs as root in CI; skipped otherwise). */
    if (geteuid() == 0) {
        assert_int_equal(tv_write_file(path, "123456", 0600), 0);
        assert_int_equal(chown(path, 65534, 65534), 0);
        assert_int_equal(read_pin(path, buf, &len), HSM_ERR_PIN_SOURCE);
        assert_non_null(strstr(hsm_last_detail(), "owned by uid 65534"));
    }
    assert_int_equal(hsm_pin_source_file(NULL, path), HSM_ERR_INVALID_ARG);
    unlink(path);
}

static int
cb_short(void *ctx, uint8_t *buf, size_t cap, size_t *out_len)
{
    static const uint8_t pin[] = {'4', '3', '2', '1'}; /* PIN bytes: no NUL */

    (void)ctx;
    (void)cap;
    memcpy(buf, pin, sizeof(pin));
    *out_len = sizeof(pin);
    return HSM_OK;
}

static int
cb_fail(void *ctx, uint8_t *buf, size_t cap, size_t *out_len)
{
    (void)ctx, (void)buf, (void)cap, (void)out_len;
    return HSM_ERR_PIN_SOURCE;
}

static void
test_callback_source(void **state)
{
    hsm_pin_source *src = NULL;
    uint8_t buf[HSM_PIN_BUF];
    size_t len = 0;
    (void)state;

    assert_int_equal(hsm_pin_source_callback(&src, cb_short, NULL), HSM_OK);
    assert_int_equal(hsm_pin_source_read(src, buf, sizeof(buf), &len), HSM_OK);
    assert_int_equal(len, 4);
    /* A buffer smaller than HSM_PIN_BUF is refused. */
    assert_int_equal(hsm_pin_source_read(src, buf, 8, &len), HSM_ERR_INVALID_ARG);
    hsm_pin_source_free(src);
    assert_int_equal(hsm_pin_source_callback(&src, cb_fail, NULL), HSM_OK);
    assert_int_equal(hsm_pin_source_read(src, buf, sizeof(buf), &len), HSM_ERR_PIN_SOURCE);
    hsm_pin_source_free(src);
    hsm_pin_source_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_files),
        cmocka_unit_test(test_hostile_files),
        cmocka_unit_test(test_callback_source),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
