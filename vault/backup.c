/*
 * backup.c - a consistent, compacted copy of a store, from any process.
 *
 * LMDB copies under a read transaction: the copy is the state of one commit,
 * and the service's writer is not blocked while it runs. This file uses LMDB
 * directly, not store.c: a backup needs no HSM, no schema check and no writer.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vault/store.h"

/* Named databases the source may hold; above the store's own count so a
 * store written by a later schema still opens for its backup. */
#define BACKUP_MAXDBS 32u
/* LMDB's name for the data file, in the source and in the copy. */
#define DATA_FILE "/data.mdb"

/* Refuses anything but an existing, empty directory: a backup is never
 * written over another. */
static int
dest_check(const char *dir, char *err, size_t err_len)
{
    struct dirent *e;
    struct stat st;
    DIR *d = NULL;
    int r = 0;

    if (stat(dir, &st) != 0) {
        snprintf(err, err_len, "%s: %s", dir, strerror(errno));
        return -API_STATUS_INVALID_ARGUMENT;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, err_len, "%s: not a directory", dir);
        return -API_STATUS_INVALID_ARGUMENT;
    }
    if ((d = opendir(dir)) == NULL) {
        snprintf(err, err_len, "%s: %s", dir, strerror(errno));
        return -API_STATUS_INVALID_ARGUMENT;
    }
    errno = 0;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(err, err_len, "%s: not empty (holds %s)", dir, e->d_name);
            r = -API_STATUS_INVALID_ARGUMENT;
            goto out;
        }
    if (errno != 0) {
        snprintf(err, err_len, "%s: %s", dir, strerror(errno));
        r = -API_STATUS_INVALID_ARGUMENT;
    }
out:
    closedir(d);
    return r;
}

/* fsync of a directory, so the new file's name is as durable as its bytes. */
static int
sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) != 0)
        r = -errno;
    close(fd);
    return r;
}

int
store_backup(const char *env_path, const char *dest_dir, char *err, size_t err_len)
{
    char src[PATH_MAX], dst[PATH_MAX];
    MDB_env *env = NULL;
    bool made = false; /* dst is ours to remove on failure */
    int fd = -1, rc, r;

    if ((size_t)snprintf(src, sizeof(src), "%s" DATA_FILE, env_path) >= sizeof(src) ||
        (size_t)snprintf(dst, sizeof(dst), "%s" DATA_FILE, dest_dir) >= sizeof(dst)) {
        snprintf(err, err_len, "path too long");
        return -API_STATUS_INVALID_ARGUMENT;
    }
    if ((r = dest_check(dest_dir, err, err_len)) != 0)
        return r;
    /* Checked first so a wrong --store gets a plain answer, and LMDB never
     * creates a lock file in a directory that holds no store. */
    if (access(src, R_OK) != 0) {
        snprintf(err, err_len, "%s: no store here (%s: %s)", env_path, src, strerror(errno));
        return -API_STATUS_INVALID_ARGUMENT;
    }
    /* MDB_RDONLY: the map size is the one the store recorded. */
    if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, BACKUP_MAXDBS)) != 0 ||
        (rc = mdb_env_set_maxreaders(env, STORE_READERS_MAX)) != 0 ||
        (rc = mdb_env_open(env, env_path, MDB_RDONLY, 0600)) != 0) {
        snprintf(err, err_len, "%s: cannot open the store: %s", env_path, mdb_strerror(rc));
        r = -API_STATUS_STORE_UNAVAILABLE;
        goto out;
    }
    /* The copy is made here, not by mdb_env_copy2, so that it is 0600 from
     * its first byte (the store's contents are wrapped keys and ciphertext,
     * still not for other users) and O_EXCL refuses a file that appeared in
     * the directory since the check. */
    if ((fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
        snprintf(err, err_len, "%s: %s", dst, strerror(errno));
        r = -API_STATUS_INVALID_ARGUMENT;
        goto out;
    }
    made = true;
    /* Exactly 0600 whatever the umask (a tighter one would leave the copy
     * unreadable to its owner's restore). */
    if (fchmod(fd, 0600) != 0) {
        snprintf(err, err_len, "%s: %s", dst, strerror(errno));
        r = -API_STATUS_STORE_UNAVAILABLE;
        goto out;
    }
    if ((rc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT)) != 0) {
        snprintf(err, err_len, "copy of %s to %s: %s", env_path, dst, mdb_strerror(rc));
        r = -API_STATUS_STORE_UNAVAILABLE;
        goto out;
    }
    /* A backup reported written must survive a crash right after. */
    rc = fsync(fd) != 0 ? errno : 0;
    if (close(fd) != 0 && rc == 0)
        rc = errno;
    fd = -1;
    if (rc == 0)
        rc = -sync_dir(dest_dir);
    if (rc != 0) {
        snprintf(err, err_len, "%s: %s", dst, strerror(rc));
        r = -API_STATUS_STORE_UNAVAILABLE;
        goto out;
    }
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    /* A failed copy leaves the directory as it found it: empty, ready for
     * another try. */
    if (r != 0 && made)
        unlink(dst);
    if (env != NULL)
        mdb_env_close(env);
    return r;
}
