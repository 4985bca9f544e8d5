/* A library built without TLS (CMake SS_TLS=OFF, or AUTO without
 * OpenSSL): the TLS calls exist and say so. A tls:// listener is refused
 * when it is added (core/listener.c), with a message; nothing else changes. */
#include "filter/filter.h"

SS_API int ss_server_set_tls(ss_server *srv, const ss_tls_options *opts)
{
    (void)srv;
    (void)opts;
    return SS_ENOTSUPPORTED;
}

SS_API int ss_server_reload_tls(ss_server *srv, const char *cert_file, const char *key_file)
{
    (void)srv;
    (void)cert_file;
    (void)key_file;
    return SS_ENOTSUPPORTED;
}

SS_API bool ss_tls_available(void)
{
    return false;
}

int ss__tls_check_listeners(ss_server *srv)
{
    (void)srv;
    return 0; /* a tls:// listener is never created here */
}

void ss__tls_follow_reload(ss_server *srv)
{
    (void)srv; /* no certificate to reload */
}

SS_API bool ss_request_tls(const ss_request *req)
{
    (void)req;
    return false;
}

SS_API const char *ss_request_tls_version(const ss_request *req)
{
    (void)req;
    return NULL;
}

SS_API const char *ss_request_tls_alpn(const ss_request *req)
{
    (void)req;
    return NULL;
}

SS_API const char *ss_request_tls_server_name(const ss_request *req)
{
    (void)req;
    return NULL;
}

SS_API const char *ss_request_tls_peer_subject(const ss_request *req)
{
    (void)req;
    return NULL;
}
