/*
 * p11_fault_ctl.c - the test side of the FAULT-INJECTION PKCS#11 wrapper:
 * environment and control file (contract in p11_fault.h).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/p11_fault.h"

/* Longest control path; test directories are short. */
#define CTL_PATH_MAX 4096
/* Suffix mkstemp fills in for the temporary beside the control file. */
#define CTL_TMP_SUFFIX ".tmp-XXXXXX"

/* The last modification time this process gave a control file: every new
 * version gets a later one, so (inode, size, mtime) differs from every
 * version before it even if the file system reuses a freed inode number. */
static struct timespec last_mtim;

int
tv_p11_fault_env(const char *control_path)
{
    if (control_path == NULL || control_path[0] == '\0') {
        errno = EINVAL;
        return -1;
    }
    if (setenv("TV_P11_FAULT_TARGET", TV_SOFTHSM_MODULE, 1) != 0 ||
        setenv("TV_P11_FAULT_CONTROL", control_path, 1) != 0)
        return -1;
    if (unlink(control_path) != 0 && errno != ENOENT)
        return -1;
    return 0;
}

/* A modification time later than |last_mtim| and not before now. */
static struct timespec
next_mtim(void)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec < last_mtim.tv_sec ||
        (now.tv_sec == last_mtim.tv_sec && now.tv_nsec <= last_mtim.tv_nsec)) {
        now = last_mtim;
        if (++now.tv_nsec == 1000000000L) {
            now.tv_sec++;
            now.tv_nsec = 0;
        }
    }
    last_mtim = now;
    return now;
}

int
tv_p11_fault_set_bytes(const char *control_path, const void *data, size_t len)
{
    char tmp[CTL_PATH_MAX];
    const unsigned char *p = data;
    struct timespec times[2];
    size_t off = 0;
    int fd = -1, r = -1;

    if (control_path == NULL || (data == NULL && len != 0) ||
        strlen(control_path) >= sizeof(tmp) - strlen(CTL_TMP_SUFFIX)) {
        errno = EINVAL;
        return -1;
    }
    snprintf(tmp, sizeof(tmp), "%s" CTL_TMP_SUFFIX, control_path);
    /* A new file, so a new inode while the old version still exists. */
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -1;
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto out;
        off += (size_t)n;
    }
    times[0] = times[1] = next_mtim();
    if (futimens(fd, times) != 0)
        goto out;
    if (close(fd) != 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (rename(tmp, control_path) != 0)
        goto out;
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    if (r != 0)
        unlink(tmp);
    return r;
}

int
tv_p11_fault_set(const char *control_path, const char *rules)
{
    return tv_p11_fault_set_bytes(control_path, rules != NULL ? rules : "",
                                  rules != NULL ? strlen(rules) : 0);
}

int
tv_p11_fault_spy(struct tv_p11_fault_spy *out)
{
    void *dl = dlopen(TV_P11_FAULT_MODULE, RTLD_NOW | RTLD_NOLOAD);
    void (*read_fn)(struct tv_p11_fault_spy *) = NULL;

    if (dl == NULL)
        return -1;
    *(void **)&read_fn = dlsym(dl, "tv_p11_fault_spy_read");
    if (read_fn != NULL)
        read_fn(out);
    dlclose(dl); /* the reference RTLD_NOLOAD took */
    return read_fn != NULL ? 0 : -1;
}
