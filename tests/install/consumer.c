/* Serves one request on an ephemeral port with the installed library. */
#include <socketserver.h>

#include <stdio.h>
#include <unistd.h>

static int handle(ss_request *req, void *data)
{
    (void)data;
    return ss_request_send_all(req, "installed\n", 10);
}

int main(void)
{
#ifdef CONSUMER_EXPECTS_TLS /* what the package (CMake or pkg-config) says of TLS */
    if (ss_tls_available() != CONSUMER_EXPECTS_TLS) {
        fprintf(stderr, "consumer: the package says TLS is %s, the library that it is %s\n",
                CONSUMER_EXPECTS_TLS ? "in" : "out", ss_tls_available() ? "in" : "out");
        return 1;
    }
#endif
    static const ss_handler h = {.version = SS_HANDLER_VERSION, .handle = handle};
    ss_server *srv;
    int rc = ss_server_new(&srv, "tcp://127.0.0.1:0", ss_dispatch_sync(), &h, NULL);
    if (rc < 0) {
        fprintf(stderr, "consumer: %s\n", ss_strerror(rc));
        return 1;
    }
    char url[128], buf[16] = {0};
    ss_server_address(srv, url, sizeof url);
    int fd = ss_connect(url);
    rc = fd < 0 ? fd : ss_server_handle_request(srv);
    if (rc == 0 && read(fd, buf, sizeof buf - 1) == 10)
        printf("%s", buf);
    close(fd);
    ss_server_free(srv);
    return rc == 0 && buf[0] == 'i' ? 0 : 1;
}
