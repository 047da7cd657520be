/*
 * backup.c - a consistent, compacted copy of a store, from any process.
 *
 * LMDB copies under a read transaction: the copy is the state of one commit,
 * and the service's writer is not blocked while it runs.
 */
#include <dirent.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vault/store.h"

/* Named databases the copy must be able to open (as store.c allows). */
#define BACKUP_MAXDBS 32u

static int
dest_ok(const char *dir, char *err, size_t err_len)
{
    struct stat st;
    struct dirent *e;
    DIR *d;
    int found = 0;

    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, err_len, "%s: not an existing directory", dir);
        return -API_STATUS_INVALID_ARGUMENT;
    }
    if ((d = opendir(dir)) == NULL) {
        snprintf(err, err_len, "%s: %s", dir, strerror(errno));
        return -API_STATUS_INVALID_ARGUMENT;
    }
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            found = 1;
    closedir(d);
    if (found) {
        /* A backup is never written over another. */
        snprintf(err, err_len, "%s: not empty", dir);
        return -API_STATUS_INVALID_ARGUMENT;
    }
    return 0;
}

int
store_backup(const char *env_path, const char *dest_dir, char *err, size_t err_len)
{
    char data[4096];
    MDB_env *env = NULL;
    int rc, r;

    if ((r = dest_ok(dest_dir, err, err_len)) != 0)
        return r;
    snprintf(data, sizeof(data), "%s/data.mdb", env_path);
    if (access(data, R_OK) != 0) {
        snprintf(err, err_len, "%s: no store here (%s)", env_path, strerror(errno));
        return -API_STATUS_INVALID_ARGUMENT;
    }
    if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, BACKUP_MAXDBS)) != 0 ||
        (rc = mdb_env_set_maxreaders(env, STORE_READERS_MAX)) != 0 ||
        (rc = mdb_env_open(env, env_path, MDB_RDONLY, 0600)) != 0) {
        snprintf(err, err_len, "%s: %s", env_path, mdb_strerror(rc));
        r = -API_STATUS_STORE_UNAVAILABLE;
        goto out;
    }
    if ((rc = mdb_env_copy2(env, dest_dir, MDB_CP_COMPACT)) != 0) {
        snprintf(err, err_len, "copy to %s: %s", dest_dir, mdb_strerror(rc));
        r = -API_STATUS_STORE_UNAVAILABLE;
        goto out;
    }
    snprintf(data, sizeof(data), "%s/data.mdb", dest_dir);
    if (chmod(data, 0600) != 0) {
        snprintf(err, err_len, "%s: %s", data, strerror(errno));
        r = -API_STATUS_STORE_UNAVAILABLE;
        goto out;
    }
    r = 0;
out:
    if (env != NULL)
        mdb_env_close(env);
    return r;
}
