/*
 * test_admin.c - tokenvault-admin as an operator runs it: a backup of an LMDB
 * environment taken while a writer keeps committing holds every record of one
 * commit, compacted, mode 0600; a destination that is missing, not a
 * directory or not empty is refused, as is a missing or broken store; usage
 * errors exit 2. store_backup's statuses and messages are checked directly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vault/store.h"

/* Records in the fixed databases; some values span several pages. */
#define NUM_CARDS 300
#define NUM_CUSTOMERS 40
#define DUPS_PER_CUSTOMER 5
#define VALUE_MAX 9000
/* Commits the writer makes before the backup starts, so the copy is taken
 * from a store that is really being written. */
#define COMMITS_BEFORE 20
#define MAP_SIZE (64u << 20)

static char base[64];
static char src[128];
static char broken[128];

static void
path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", base, name);
}

/* Runs `tokenvault-admin ARGS >OUT 2>&1`; returns its exit status, and its
 * output in *out (static). */
static int
admin(const char *args, const char **out)
{
    static char text[8192];
    char cmd[1024], log[128];
    int st, fd;
    ssize_t n;

    path(log, sizeof(log), "admin.out");
    snprintf(cmd, sizeof(cmd), "%s %s >%s 2>&1", TV_ADMIN, args, log);
    st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_true((fd = open(log, O_RDONLY)) >= 0);
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    assert_true(n >= 0);
    text[n] = '\0';
    if (out != NULL)
        *out = text;
    return WEXITSTATUS(st);
}

static void
be32(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

/* The value of card |i|: its length varies, some beyond a page. */
static size_t
card_value(uint8_t *out, uint32_t i)
{
    size_t len = 1 + (i * 7919u) % VALUE_MAX;

    for (size_t j = 0; j < len; j++)
        out[j] = (uint8_t)(i * 31u + j * 17u);
    return len;
}

static void
put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl, const void *v, size_t vl)
{
    MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};

    assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
}

static MDB_env *env;
static MDB_dbi db_cards, db_customers, db_meta, db_stream;
static atomic_bool writing;
static atomic_uint commits;
static atomic_int writer_error;

/* Keeps committing: stream gets key n and meta "count" becomes n + 1 in the
 * same transaction, so a consistent copy has exactly count stream keys. */
static void *
writer(void *arg)
{
    static const char pad[512];
    uint32_t n = 0;

    (void)arg;
    while (atomic_load(&writing)) {
        MDB_txn *txn = NULL;
        uint8_t k[4], c[4];
        MDB_val key = {4, k}, val = {sizeof(pad), (void *)pad}, ck = {5, "count"}, cv = {4, c};
        int rc;

        be32(k, n);
        be32(c, n + 1);
        if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
            (rc = mdb_put(txn, db_stream, &key, &val, 0)) != 0 ||
            (rc = mdb_put(txn, db_meta, &ck, &cv, 0)) != 0 || (rc = mdb_txn_commit(txn)) != 0) {
            if (txn != NULL && rc != 0)
                mdb_txn_abort(txn);
            atomic_store(&writer_error, rc);
            return NULL;
        }
        n++;
        atomic_store(&commits, n);
    }
    return NULL;
}

static int
setup(void **state)
{
    static uint8_t v[VALUE_MAX];
    MDB_txn *txn = NULL;
    char junk[160];
    int fd;

    (void)state;
    snprintf(base, sizeof(base), "/tmp/tv-admin-XXXXXX");
    if (mkdtemp(base) == NULL)
        return -1;
    path(src, sizeof(src), "store");
    assert_int_equal(mkdir(src, 0700), 0);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_set_mapsize(env, MAP_SIZE), 0);
    /* MDB_NOSYNC: durability is not under test, and the writer is faster. */
    assert_int_equal(mdb_env_open(env, src, MDB_NOSYNC, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "cards", MDB_CREATE, &db_cards), 0);
    assert_int_equal(mdb_dbi_open(txn, "customers", MDB_CREATE | MDB_DUPSORT, &db_customers), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", MDB_CREATE, &db_meta), 0);
    assert_int_equal(mdb_dbi_open(txn, "stream", MDB_CREATE, &db_stream), 0);
    /* Every other card is written then deleted: free pages to compact away. */
    for (uint32_t i = 0; i < 2 * NUM_CARDS; i++) {
        uint8_t k[4];

        be32(k, i);
        put(txn, db_cards, k, 4, v, card_value(v, i));
    }
    for (uint32_t i = 1; i < 2 * NUM_CARDS; i += 2) {
        uint8_t k[4];
        MDB_val key = {4, k};

        be32(k, i);
        assert_int_equal(mdb_del(txn, db_cards, &key, NULL), 0);
    }
    for (uint32_t i = 0; i < NUM_CUSTOMERS; i++)
        for (uint32_t j = 0; j < DUPS_PER_CUSTOMER; j++) {
            uint8_t k[4], d[4];

            be32(k, i);
            be32(d, i * 1000u + j);
            put(txn, db_customers, k, 4, d, 4);
        }
    put(txn, db_meta, "schema", 6, "\x00\x00\x00\x01", 4);
    assert_int_equal(mdb_txn_commit(txn), 0);

    /* A store directory whose data.mdb is not an LMDB file. */
    path(broken, sizeof(broken), "broken");
    assert_int_equal(mkdir(broken, 0700), 0);
    snprintf(junk, sizeof(junk), "%s/data.mdb", broken);
    assert_true((fd = open(junk, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0);
    for (int i = 0; i < 64; i++)
        assert_int_equal(write(fd, "not an LMDB file, just bytes....", 32), 32);
    close(fd);
    return 0;
}

static int
teardown(void **state)
{
    char cmd[128];

    (void)state;
    mdb_env_close(env);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : -1;
}

static uint32_t
get_be32(const MDB_val *v)
{
    const uint8_t *p = v->mv_data;

    assert_int_equal(v->mv_size, 4);
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Pages the copy's trees hold: the main database's and each named one's. */
static size_t
tree_pages(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_stat ms;

    assert_int_equal(mdb_stat(txn, dbi, &ms), 0);
    return ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages;
}

/* Opens the copy in |dir| and checks every record against what setup wrote,
 * and the stream against its count; then that it is compacted: its file is
 * its two meta pages and its trees' pages, no free ones. Returns the count. */
static uint32_t
check_copy(const char *dir)
{
    static uint8_t v[VALUE_MAX];
    MDB_env *copy = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi cards, customers, meta, stream;
    MDB_val key, val, ck = {5, "count"};
    uint32_t n = 0, count;
    MDB_stat ms;

    assert_int_equal(mdb_env_create(&copy), 0);
    assert_int_equal(mdb_env_set_maxdbs(copy, 8), 0);
    /* MDB_NOLOCK: reading the copy leaves no lock file beside it. */
    assert_int_equal(mdb_env_open(copy, dir, MDB_RDONLY | MDB_NOLOCK, 0600), 0);
    assert_int_equal(mdb_txn_begin(copy, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "cards", 0, &cards), 0);
    assert_int_equal(mdb_dbi_open(txn, "customers", 0, &customers), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    assert_int_equal(mdb_dbi_open(txn, "stream", 0, &stream), 0);

    /* cards: exactly the even ones, each value equal. */
    assert_int_equal(mdb_cursor_open(txn, cards, &cur), 0);
    while (mdb_cursor_get(cur, &key, &val, n == 0 ? MDB_FIRST : MDB_NEXT) == 0) {
        size_t len = card_value(v, 2 * n);

        assert_int_equal(get_be32(&key), 2 * n);
        assert_int_equal(val.mv_size, len);
        assert_memory_equal(val.mv_data, v, len);
        n++;
    }
    assert_int_equal(n, NUM_CARDS);
    mdb_cursor_close(cur);

    /* customers: the dupsort values, in order. */
    assert_int_equal(mdb_stat(txn, customers, &ms), 0);
    assert_int_equal(ms.ms_entries, NUM_CUSTOMERS * DUPS_PER_CUSTOMER);
    assert_int_equal(mdb_cursor_open(txn, customers, &cur), 0);
    for (n = 0; mdb_cursor_get(cur, &key, &val, n == 0 ? MDB_FIRST : MDB_NEXT) == 0; n++) {
        assert_int_equal(get_be32(&key), n / DUPS_PER_CUSTOMER);
        assert_int_equal(get_be32(&val), (n / DUPS_PER_CUSTOMER) * 1000u + n % DUPS_PER_CUSTOMER);
    }
    assert_int_equal(n, NUM_CUSTOMERS * DUPS_PER_CUSTOMER);
    mdb_cursor_close(cur);

    /* meta and stream: one commit's state, never half of one. */
    key = (MDB_val){6, "schema"};
    assert_int_equal(mdb_get(txn, meta, &key, &val), 0);
    assert_int_equal(get_be32(&val), 1);
    assert_int_equal(mdb_get(txn, meta, &ck, &val), 0);
    count = get_be32(&val);
    assert_int_equal(mdb_stat(txn, stream, &ms), 0);
    assert_int_equal(ms.ms_entries, count);
    assert_int_equal(mdb_cursor_open(txn, stream, &cur), 0);
    for (n = 0; mdb_cursor_get(cur, &key, &val, n == 0 ? MDB_FIRST : MDB_NEXT) == 0; n++)
        assert_int_equal(get_be32(&key), n);
    assert_int_equal(n, count);
    mdb_cursor_close(cur);

    {
        char data[160];
        struct stat st;
        MDB_dbi main_db;
        size_t pages;

        assert_int_equal(mdb_dbi_open(txn, NULL, 0, &main_db), 0);
        pages = 2 + tree_pages(txn, main_db) + tree_pages(txn, cards) +
                tree_pages(txn, customers) + tree_pages(txn, meta) + tree_pages(txn, stream);
        assert_int_equal(mdb_env_stat(copy, &ms), 0);
        snprintf(data, sizeof(data), "%s/data.mdb", dir);
        assert_int_equal(stat(data, &st), 0);
        assert_int_equal(st.st_size, pages * ms.ms_psize);
    }
    mdb_txn_abort(txn);
    mdb_env_close(copy);
    return count;
}

static void
test_backup_while_writing(void **state)
{
    char out[128], data[160], args[512], want[256];
    struct stat st;
    pthread_t th;
    const char *text;
    unsigned before;
    mode_t mask;
    int rc;

    (void)state;
    path(out, sizeof(out), "backup");
    assert_int_equal(mkdir(out, 0700), 0);
    atomic_store(&writing, true);
    assert_int_equal(pthread_create(&th, NULL, writer, NULL), 0);
    while (atomic_load(&commits) < COMMITS_BEFORE && atomic_load(&writer_error) == 0)
        usleep(1000);
    before = atomic_load(&commits);
    /* The usual umask: the copy is 0600 all the same. */
    mask = umask(022);
    snprintf(args, sizeof(args), "backup --store %s --out %s", src, out);
    rc = admin(args, &text);
    umask(mask);
    atomic_store(&writing, false);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(atomic_load(&writer_error), 0);
    assert_int_equal(rc, 0);

    snprintf(data, sizeof(data), "%s/data.mdb", out);
    assert_int_equal(stat(data, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    snprintf(want, sizeof(want), "written to %s (%lld bytes", data, (long long)st.st_size);
    assert_non_null(strstr(text, want));
    /* Only data.mdb: LMDB's lock file is not part of a backup. */
    snprintf(data, sizeof(data), "%s/lock.mdb", out);
    assert_int_not_equal(access(data, F_OK), 0);

    assert_true(check_copy(out) >= before);
    assert_true(atomic_load(&commits) > before);
}

/* A refused backup: exit 1, a reason naming |name|, and |out| as it was. */
static void
refused(const char *store, const char *out, const char *name, const char *reason)
{
    char args[512];
    const char *text;

    snprintf(args, sizeof(args), "backup --store %s --out %s", store, out);
    assert_int_equal(admin(args, &text), 1);
    assert_non_null(strstr(text, name));
    assert_non_null(strstr(text, reason));
}

static void
test_refusals(void **state)
{
    char out[128], file[160], missing[128], empty[128], lock[160];
    int fd;

    (void)state;
    /* A directory that already holds something, even one file. */
    path(out, sizeof(out), "full");
    assert_int_equal(mkdir(out, 0700), 0);
    snprintf(file, sizeof(file), "%s/keep", out);
    assert_true((fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0);
    assert_int_equal(write(fd, "keep", 4), 4);
    close(fd);
    refused(src, out, out, "not empty");
    snprintf(file, sizeof(file), "%s/data.mdb", out);
    assert_int_not_equal(access(file, F_OK), 0);

    /* Missing, and a regular file. */
    path(missing, sizeof(missing), "missing");
    refused(src, missing, missing, "No such file or directory");
    assert_int_not_equal(access(missing, F_OK), 0);
    snprintf(file, sizeof(file), "%s/keep", out);
    refused(src, file, file, "not a directory");

    /* A store that is not there, or holds no store, or a broken one: the
     * destination stays empty. */
    path(empty, sizeof(empty), "empty");
    assert_int_equal(mkdir(empty, 0700), 0);
    path(out, sizeof(out), "out");
    assert_int_equal(mkdir(out, 0700), 0);
    refused(missing, out, missing, "no store here");
    refused(empty, out, empty, "no store here");
    snprintf(lock, sizeof(lock), "%s/lock.mdb", empty);
    assert_int_not_equal(access(lock, F_OK), 0); /* no lock file left behind */
    refused(broken, out, broken, mdb_strerror(MDB_INVALID));
    snprintf(file, sizeof(file), "%s/data.mdb", out);
    assert_int_not_equal(access(file, F_OK), 0);
    /* ... and is still usable. */
    assert_int_equal(rmdir(out), 0);
}

static void
test_usage(void **state)
{
    static const char *const bad[] = {
        "",
        "restore",
        "backup",
        "backup --store /x",
        "backup --out /x",
        "backup --store /x --out /y extra",
        "backup --store /x --out /y --bogus",
        "backup --store",
    };
    const char *text;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(admin(bad[i], &text), 2);
        assert_non_null(strstr(text, "backup"));
    }
    assert_int_equal(admin("--help", &text), 0);
    assert_non_null(strstr(text, "usage: tokenvault-admin"));
}

static void
test_store_backup(void **state)
{
    char out[128], err[512], data[160];
    struct stat st;
    mode_t mask;

    (void)state;
    path(out, sizeof(out), "direct");
    /* Missing destination: an argument error that names it. */
    assert_int_equal(store_backup(src, out, err, sizeof(err)), -API_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(err, out));
    assert_int_equal(mkdir(out, 0700), 0);
    /* A broken store: unavailable, with the path and LMDB's reason. */
    assert_int_equal(store_backup(broken, out, err, sizeof(err)), -API_STATUS_STORE_UNAVAILABLE);
    assert_non_null(strstr(err, broken));
    assert_non_null(strstr(err, mdb_strerror(MDB_INVALID)));
    /* A umask tighter than 0600 does not make the copy unreadable. */
    mask = umask(0277);
    assert_int_equal(store_backup(src, out, err, sizeof(err)), 0);
    umask(mask);
    snprintf(data, sizeof(data), "%s/data.mdb", out);
    assert_int_equal(stat(data, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    check_copy(out);
    /* Never over another backup. */
    assert_int_equal(store_backup(src, out, err, sizeof(err)), -API_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "not empty"));
    /* A small err buffer is filled, not overrun. */
    assert_int_equal(store_backup(src, out, err, 8), -API_STATUS_INVALID_ARGUMENT);
    assert_int_equal(strlen(err), 7);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_while_writing),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_store_backup),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
