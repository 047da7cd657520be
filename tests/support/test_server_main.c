/*
 * test_server_main.c - tv-test-server DIR: the sample server of
 * test_server.h on TCP 127.0.0.1, for shell tests of the command line.
 *
 * Prints the port on the first line of stdout and serves until SIGTERM or
 * SIGINT, or until stdin reaches EOF when stdin is a pipe or socket (so a
 * server whose parent dies goes with it). A shell's background job gets
 * /dev/null as stdin; that is not taken as EOF. As a last guard against an
 * orphan it exits after TV_TEST_SERVER_LIFETIME_S.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/test_server.h"

/* Ten minutes: longer than any test, short enough not to linger. */
#define TV_TEST_SERVER_LIFETIME_S 600

int
main(int argc, char **argv)
{
    struct tv_test_server_config cfg = {0};
    struct tv_test_server *s = NULL;
    struct pollfd p[2];
    struct stat st;
    sigset_t stop;
    time_t end = time(NULL) + TV_TEST_SERVER_LIFETIME_S;
    int sfd, watch_stdin;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    /* Blocked before the server thread starts, so it inherits the mask and
     * the signals reach the signalfd. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    if (sigprocmask(SIG_BLOCK, &stop, NULL) < 0 || (sfd = signalfd(-1, &stop, SFD_CLOEXEC)) < 0) {
        perror("tv-test-server: signalfd");
        return 1;
    }
    cfg.dir = argv[1];
    if (tv_test_server_start(&s, &cfg) < 0) {
        fprintf(stderr, "tv-test-server: cannot start with certificates from %s\n", argv[1]);
        return 1;
    }
    printf("%u\n", (unsigned)tv_test_server_port(s));
    fflush(stdout);
    watch_stdin = fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
    p[0].fd = sfd;
    p[0].events = POLLIN;
    p[1].fd = watch_stdin ? STDIN_FILENO : -1;
    p[1].events = POLLIN;
    while (time(NULL) < end) {
        char buf[256];

        if (poll(p, 2, 1000) <= 0)
            continue;
        if (p[0].revents != 0)
            break;
        if (p[1].revents != 0 && read(STDIN_FILENO, buf, sizeof(buf)) <= 0)
            break;
    }
    tv_test_server_stop(s);
    close(sfd);
    return 0;
}
