/*
 * test_store.c - the LMDB store: open and schema, reads and writes, the
 * writer's group commit, a failing job's isolation, bounds, and a full map.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vault/log.h"
#include "vault/store.h"

static char dir[64];
static char path[128];
static int seq;

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tv-store-XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A fresh store directory name for each test. */
static const char *
fresh(void)
{
    snprintf(path, sizeof(path), "%s/s%d", dir, seq++);
    return path;
}

static struct vault_store *
open_store(uint64_t map)
{
    struct vault_store *s = NULL;
    char err[256];

    assert_int_equal(store_open(&s, fresh(), map, err, sizeof(err)), 0);
    return s;
}

static void
test_open_and_schema(void **state)
{
    struct vault_store *s = NULL;
    char err[256], p[128];
    struct stat st;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {6, "schema"}, v;
    uint8_t two[4] = {0, 0, 0, 2};

    (void)state;
    s = open_store(1u << 20);
    snprintf(p, sizeof(p), "%s", path);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    store_close(s);
    assert_int_equal(store_open(&s, p, 1u << 20, err, sizeof(err)), 0); /* reopens */
    store_close(s);

    /* A directory others may enter is refused. */
    assert_int_equal(chmod(p, 0755), 0);
    assert_int_not_equal(store_open(&s, p, 1u << 20, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "0700"));
    assert_int_equal(chmod(p, 0700), 0);

    /* A store of another schema version is refused. */
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, p, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    v.mv_size = 4;
    v.mv_data = two;
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    assert_int_equal(store_open(&s, p, 1u << 20, err, sizeof(err)), -API_STATUS_INTERNAL);
    assert_non_null(strstr(err, "schema version 2"));
}

/* Each job writes one key; done counts. */
struct job {
    struct store_write w;
    char key[32];
    int fail;      /* apply writes, then fails */
    int result;
    int done;
    struct vault_store *s;
    int seen_in_done; /* the key was readable when done ran */
};

static int
job_apply(struct store_write *w, struct store_txn *t)
{
    struct job *j = (struct job *)w;
    int r = store_put(t, STORE_DB_META, j->key, strlen(j->key), "v", 1, STORE_PUT_NEW);

    return r != 0 ? r : j->fail ? -API_STATUS_CONFLICT : 0;
}

static void
job_done(struct store_write *w, int result)
{
    struct job *j = (struct job *)w;
    struct store_txn t;
    MDB_val v;

    j->result = result;
    if (store_read_begin(j->s, &t) == 0) {
        j->seen_in_done = store_get(&t, STORE_DB_META, j->key, strlen(j->key), &v) == 0;
        store_read_end(&t);
    }
    atomic_thread_fence(memory_order_release);
    j->done = 1;
}

static void
test_reads_and_writes(void **state)
{
    struct vault_store *s = open_store(1u << 20);
    struct job j = {.w = {.apply = job_apply, .done = job_done}, .s = s};
    struct store_txn t;
    MDB_val k, v;
    size_t n = 99;

    (void)state;
    assert_int_equal(store_writer_start(s, NULL, 16), 0);
    snprintf(j.key, sizeof(j.key), "k1");
    assert_int_equal(store_write_wait(s, &j.w), 0);
    assert_true(j.seen_in_done);
    /* The same key again with STORE_PUT_NEW: CONFLICT, nothing written. */
    assert_int_equal(store_write_wait(s, &j.w), -API_STATUS_CONFLICT);

    assert_int_equal(store_read_begin(s, &t), 0);
    assert_int_equal(store_get(&t, STORE_DB_META, "k1", 2, &v), 0);
    assert_int_equal(store_get(&t, STORE_DB_META, "nope", 4, &v), -API_STATUS_NOT_FOUND);
    assert_int_equal(store_dup_count(&t, STORE_DB_CUSTOMERS, "c", 1, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_last(&t, STORE_DB_AUDIT, &k, &v), -API_STATUS_NOT_FOUND);
    store_read_end(&t);
    store_close(s);
}

/* Dupsort databases, through a job. */
static int
dup_apply(struct store_write *w, struct store_txn *t)
{
    size_t n = 0;
    MDB_val k, v;

    (void)w;
    assert_int_equal(store_put(t, STORE_DB_CUSTOMERS, "m\0c1", 4, "tokB", 4, 0), 0);
    assert_int_equal(store_put(t, STORE_DB_CUSTOMERS, "m\0c1", 4, "tokA", 4, 0), 0);
    assert_int_equal(store_put(t, STORE_DB_CUSTOMERS, "m\0c1", 4, "tokA", 4, 0), -API_STATUS_CONFLICT);
    assert_int_equal(store_dup_count(t, STORE_DB_CUSTOMERS, "m\0c1", 4, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(store_get_both(t, STORE_DB_CUSTOMERS, "m\0c1", 4, "tokA", 4), 0);
    assert_int_equal(store_get_both(t, STORE_DB_CUSTOMERS, "m\0c1", 4, "tokC", 4), -API_STATUS_NOT_FOUND);
    assert_int_equal(store_del(t, STORE_DB_CUSTOMERS, "m\0c1", 4, "tokB", 4), 0);
    assert_int_equal(store_del(t, STORE_DB_CUSTOMERS, "m\0c1", 4, "tokB", 4), -API_STATUS_NOT_FOUND);
    assert_int_equal(store_put(t, STORE_DB_AUDIT, "\0\0\0\0\0\0\0\1", 8, "one", 3, 0), 0);
    assert_int_equal(store_put(t, STORE_DB_AUDIT, "\0\0\0\0\0\0\0\2", 8, "two", 3, 0), 0);
    assert_int_equal(store_last(t, STORE_DB_AUDIT, &k, &v), 0);
    assert_int_equal(v.mv_size, 3);
    assert_memory_equal(v.mv_data, "two", 3);
    return 0;
}

static void
noop_done(struct store_write *w, int result)
{
    (void)w;
    (void)result;
}

static int
collect(void *ctx, const MDB_val *v)
{
    char *out = ctx;

    strncat(out, v->mv_data, v->mv_size);
    return 0;
}

static int
count2(void *ctx, const MDB_val *k, const MDB_val *v)
{
    (void)k;
    (void)v;
    ++*(int *)ctx;
    return 0;
}

static void
test_dupsort(void **state)
{
    struct vault_store *s = open_store(1u << 20);
    struct store_write w = {dup_apply, noop_done, NULL, 0};
    struct store_txn t;
    char out[32] = "";
    int n = 0;

    (void)state;
    assert_int_equal(store_writer_start(s, NULL, 16), 0);
    assert_int_equal(store_write_wait(s, &w), 0);
    assert_int_equal(store_read_begin(s, &t), 0);
    assert_int_equal(store_dup_each(&t, STORE_DB_CUSTOMERS, "m\0c1", 4, collect, out), 0);
    assert_string_equal(out, "tokA");
    assert_int_equal(store_each(&t, STORE_DB_AUDIT, NULL, 0, count2, &n), 0);
    assert_int_equal(n, 2);
    store_read_end(&t);
    store_close(s);
}

#define THREADS 4
#define JOBS_PER_THREAD 125

struct submitter {
    struct vault_store *s;
    struct job *jobs;
    int base;
};

static void *
submit_many(void *arg)
{
    struct submitter *sub = arg;

    for (int i = 0; i < JOBS_PER_THREAD; i++) {
        struct job *j = &sub->jobs[i];

        j->w.apply = job_apply;
        j->w.done = job_done;
        j->s = sub->s;
        j->fail = (sub->base + i) % 50 == 7; /* some jobs fail after writing */
        snprintf(j->key, sizeof(j->key), "job-%d", sub->base + i);
        while (store_write_submit(sub->s, &j->w) == -API_STATUS_OVERLOADED)
            usleep(100);
    }
    return NULL;
}

/* 500 jobs from 4 threads: all answered, fewer commits than jobs (group
 * commit), and each failing job left no trace while its batch committed. */
static void
test_group_commit(void **state)
{
    struct vault_store *s = open_store(16u << 20);
    static struct job jobs[THREADS][JOBS_PER_THREAD];
    struct submitter subs[THREADS];
    pthread_t th[THREADS];
    struct store_stats st;
    struct store_txn t;
    MDB_val v;
    int failed = 0;

    (void)state;
    memset(jobs, 0, sizeof(jobs));
    assert_int_equal(store_writer_start(s, NULL, 64), 0);
    for (int i = 0; i < THREADS; i++) {
        subs[i] = (struct submitter){s, jobs[i], i * JOBS_PER_THREAD};
        assert_int_equal(pthread_create(&th[i], NULL, submit_many, &subs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    store_writer_stop(s); /* drains what is queued */
    assert_int_equal(store_read_begin(s, &t), 0);
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < JOBS_PER_THREAD; k++) {
            struct job *j = &jobs[i][k];

            assert_int_equal(j->done, 1);
            if (j->fail) {
                failed++;
                assert_int_equal(j->result, -API_STATUS_CONFLICT);
                assert_int_equal(store_get(&t, STORE_DB_META, j->key, strlen(j->key), &v),
                                 -API_STATUS_NOT_FOUND);
            } else {
                assert_int_equal(j->result, 0);
                assert_true(j->seen_in_done); /* answered after the commit */
                assert_int_equal(store_get(&t, STORE_DB_META, j->key, strlen(j->key), &v), 0);
            }
        }
    store_read_end(&t);
    assert_int_equal(failed, 10);
    assert_int_equal(store_stats_get(s, &st), 0);
    assert_int_equal(st.jobs, THREADS * JOBS_PER_THREAD - failed);
    assert_true(st.commits < st.jobs);
    /* Submitting after the writer stopped: refused, done never runs. */
    {
        struct job j = {.w = {.apply = job_apply, .done = job_done}, .s = s};

        snprintf(j.key, sizeof(j.key), "late");
        assert_int_equal(store_write_submit(s, &j.w), -API_STATUS_SHUTTING_DOWN);
        assert_int_equal(j.done, 0);
    }
    store_close(s);
}

/* A job that holds the writer until released, to fill the queue behind it. */
static atomic_int gate;

static int
slow_apply(struct store_write *w, struct store_txn *t)
{
    (void)w;
    (void)t;
    while (atomic_load(&gate) == 0)
        usleep(1000);
    return 0;
}

static void
test_queue_bound(void **state)
{
    struct vault_store *s = open_store(1u << 20);
    struct store_write slow = {slow_apply, noop_done, NULL, 0};
    struct job a = {.w = {.apply = job_apply, .done = job_done}}, b = {.w = {.apply = job_apply, .done = job_done}};

    (void)state;
    a.s = b.s = s;
    snprintf(a.key, sizeof(a.key), "a");
    snprintf(b.key, sizeof(b.key), "b");
    atomic_store(&gate, 0);
    assert_int_equal(store_writer_start(s, NULL, 1), 0);
    assert_int_equal(store_write_submit(s, &slow), 0);
    usleep(50000); /* the writer has taken it */
    assert_int_equal(store_write_submit(s, &a.w), 0);
    assert_int_equal(store_write_submit(s, &b.w), -API_STATUS_OVERLOADED);
    atomic_store(&gate, 1);
    store_writer_stop(s);
    assert_int_equal(a.done, 1);
    assert_int_equal(b.done, 0);
    store_close(s);
}

/* Fill a 1 MB map: the job that does not fit gets STORE_UNAVAILABLE, what
 * was committed before stays, and the store still reads. */
static int
big_apply(struct store_write *w, struct store_txn *t)
{
    struct job *j = (struct job *)w;
    static uint8_t val[400];

    memset(val, 'x', sizeof(val));
    return store_put(t, STORE_DB_CARDS, j->key, strlen(j->key), val, sizeof(val), STORE_PUT_NEW);
}

static void
test_full_map(void **state)
{
    struct vault_store *s = open_store(1u << 20);
    struct job j = {.w = {.apply = big_apply, .done = job_done}};
    struct store_stats st;
    struct store_txn t;
    MDB_val v;
    int r = 0, n;

    (void)state;
    j.s = s;
    assert_int_equal(store_writer_start(s, NULL, 16), 0);
    for (n = 0; n < 10000; n++) {
        snprintf(j.key, sizeof(j.key), "card-%06d", n);
        if ((r = store_write_wait(s, &j.w)) != 0)
            break;
    }
    assert_true(n > 100);
    assert_int_equal(r, -API_STATUS_STORE_UNAVAILABLE);
    assert_int_equal(store_stats_get(s, &st), 0);
    assert_int_equal(st.entries[STORE_DB_CARDS], (uint64_t)n);
    assert_int_equal(store_read_begin(s, &t), 0);
    assert_int_equal(store_get(&t, STORE_DB_CARDS, "card-000000", 11, &v), 0);
    assert_int_equal(store_get(&t, STORE_DB_CARDS, j.key, strlen(j.key), &v), -API_STATUS_NOT_FOUND);
    store_read_end(&t);
    store_close(s);
}

/* Forks a process that opens the store at |p| and, if |txn|, begins a read
 * transaction; it signals on |fd| and then waits to be killed. */
static pid_t
holder(const char *p, bool txn, int fd)
{
    struct vault_store *s = NULL;
    struct store_txn t;
    char err[256];
    pid_t pid = fork();

    if (pid != 0)
        return pid;
    if (store_open_readonly(&s, p, err, sizeof(err)) != 0 || (txn && store_read_begin(s, &t) != 0))
        _exit(1);
    (void)!write(fd, "r", 1);
    pause();
    _exit(0);
}

/* A process killed inside a read transaction leaves its reader slot taken
 * while another process keeps the environment open (a backup, a check): LMDB
 * resets the reader table only when the opener is alone. The next
 * store_open clears the dead slot (mdb_reader_check) and logs it. */
static void
test_stale_reader_cleared(void **state)
{
    struct vault_store *s = open_store(1u << 20);
    char p[128], err[256], logf[160], line[512], ready;
    int fds[2], status = 0, logfd;
    pid_t reader, bystander;
    FILE *f;
    bool seen = false;

    (void)state;
    snprintf(p, sizeof(p), "%s", path);
    store_close(s);
    assert_int_equal(pipe(fds), 0);
    bystander = holder(p, false, fds[1]);
    assert_true(bystander > 0);
    assert_int_equal(read(fds[0], &ready, 1), 1);
    reader = holder(p, true, fds[1]);
    assert_true(reader > 0);
    assert_int_equal(read(fds[0], &ready, 1), 1);
    assert_int_equal(kill(reader, SIGKILL), 0);
    assert_int_equal(waitpid(reader, &status, 0), reader);
    assert_true(WIFSIGNALED(status));

    snprintf(logf, sizeof(logf), "%s/log", dir);
    logfd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(logfd >= 0);
    vlog_set_fd(logfd);
    vlog_set_level(VAULT_LOG_INFO);
    assert_int_equal(store_open(&s, p, 1u << 20, err, sizeof(err)), 0);
    vlog_set_fd(2);
    close(logfd);
    store_close(s);
    kill(bystander, SIGKILL);
    waitpid(bystander, &status, 0);
    close(fds[0]);
    close(fds[1]);
    assert_non_null(f = fopen(logf, "r"));
    while (fgets(line, sizeof(line), f) != NULL)
        seen = seen || (strstr(line, "event=store_stale_readers_cleared") != NULL &&
                        strstr(line, "count=1") != NULL);
    fclose(f);
    assert_true(seen);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_and_schema), cmocka_unit_test(test_reads_and_writes),
        cmocka_unit_test(test_dupsort),         cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_queue_bound),     cmocka_unit_test(test_full_map),
        cmocka_unit_test(test_stale_reader_cleared),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
