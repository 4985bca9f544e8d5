/* libFuzzer target: the address parser and formatter, which see untrusted
 * text (command lines, configuration) and untrusted socket addresses. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Every parsed URL must satisfy what the transports rely on. */
static void check_parsed(const ss__url *url)
{
    bool inet = url->scheme == SS__SCHEME_TCP || url->scheme == SS__SCHEME_UDP ||
                url->scheme == SS__SCHEME_TLS; /* tls:// is TCP underneath */
    if (inet) {
        if (strlen(url->port) == 0 || atoi(url->port) > 65535)
            abort();
        if (strpbrk(url->host, "[]/") != NULL)
            abort();
    } else if (url->scheme == SS__SCHEME_FD) {
        if (url->path[0] == '\0' || strspn(url->path, "0123456789") != strlen(url->path))
            abort();
    } else if (url->path[0] == '\0' && url->scheme != SS__SCHEME_SYSTEMD) {
        abort(); /* "systemd:" alone means every passed socket */
    }
}

/* Formats the input as if it were a socket address a peer handed us. */
static void format_as_sockaddr(const uint8_t *data, size_t size)
{
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof sa);
    size_t n = size < sizeof sa ? size : sizeof sa;
    memcpy(&sa, data, n);
    char small[8], url[128];
    ss__format_peer((struct sockaddr *)&sa, (socklen_t)n, small, sizeof small);
    int rc = ss__format_url(SS__SCHEME_UNIX, (struct sockaddr *)&sa, (socklen_t)n, url, sizeof url);
    if (rc >= 0 && (size_t)rc != strlen(url))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    ss__url url;
    if (ss__url_parse(text, &url) == 0)
        check_parsed(&url);
    free(text);
    format_as_sockaddr(data, size);
    return 0;
}
