/*
 * Loaded into headless Chromium by the dashboard's browser tests (LD_PRELOAD).
 *
 * Every container the local provider starts or stops makes podman create or delete its
 * bridge (podman0, 10.88.0.1). Chromium watches addresses through a NETLINK_ROUTE socket and,
 * on any change, aborts every request in flight with net::ERR_NETWORK_CHANGED, loopback ones
 * included, so a page could fail to load because a job started. Refusing that one socket
 * makes Chromium assume the network never changes; nothing else is affected.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/netlink.h>
#include <stddef.h>
#include <sys/socket.h>

int socket(int domain, int type, int protocol) {
    static int (*real_socket)(int, int, int);
    if (real_socket == NULL) {
        real_socket = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
    }
    if (domain == AF_NETLINK && protocol == NETLINK_ROUTE) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    return real_socket(domain, type, protocol);
}
