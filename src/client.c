/* ss_connect: the client side of the library's URLs, for tools, tests and
 * examples that talk to a server. */
#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>

/* Tries each resolved address in order until one connects. */
static int connect_inet(const ss__url *url, int socktype)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = socktype, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *list = NULL;
    const char *host = url->host[0] != '\0' ? url->host : "localhost";
    int gai = getaddrinfo(host, url->port, &hints, &list);
    if (gai != 0)
        return gai == EAI_SYSTEM && errno != 0 ? -errno : SS_ERESOLVE;
    int rc = -ECONNREFUSED;
    for (const struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        int fd = ss__socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            rc = fd;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            rc = fd;
            break;
        }
        rc = -errno;
        close(fd);
    }
    freeaddrinfo(list);
    return rc;
}

SS_API int ss_connect(const char *url)
{
    ss__url parsed;
    int rc = ss__url_parse(url, &parsed);
    if (rc < 0)
        return rc;
    switch (parsed.scheme) {
    case SS__SCHEME_TCP:
        return connect_inet(&parsed, SOCK_STREAM);
    default:
        return SS_ENOTSUPPORTED;
    }
}
