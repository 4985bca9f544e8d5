/* A scripted peer for unit tests of the request I/O layer: a request whose
 * transport is a list of events (bytes, end of stream, an error) instead of
 * a socket. Each recv takes from the next event at most what was asked;
 * the unused rest of an event is the next recv's. Bytes sent are kept. */
#ifndef SS_FAKE_TRANSPORT_H
#define SS_FAKE_TRANSPORT_H

#include "internal.h"

#include <stddef.h>

enum { FAKE_MAX_EVENTS = 32 };

typedef struct fake_event {
    const char *bytes; /* NULL: no bytes, the result is `rc` */
    size_t len;        /* of bytes (so NULs can be sent) */
    int rc;            /* 0 = end of stream, < 0 = that error */
} fake_event;

/* A chunk of the peer's bytes (a C string). */
#define FAKE_BYTES(s) ((fake_event){.bytes = (s), .len = sizeof(s) - 1})
#define FAKE_EOF      ((fake_event){.rc = 0})
#define FAKE_ERROR(e) ((fake_event){.rc = (e)})

typedef struct fake_peer {
    fake_event events[FAKE_MAX_EVENTS];
    size_t count, next, offset; /* offset into events[next].bytes */
    size_t recv_calls;
    size_t largest_ask; /* the largest size a recv was asked for */
    char sent[4096];
    size_t sent_len, send_calls;
    int send_rc; /* what send_all returns (0, or an error to inject) */
} fake_peer;

/* The peer the fake transport reads from; reset by fake_request_new. */
extern fake_peer fake;

/* Appends events to the script. */
void fake_script(const fake_event *events, size_t count);
/* A request on a fresh server (read buffer of read_buffer bytes, write
 * buffer of write_buffer) whose I/O goes to `fake`. */
ss_request *fake_request_new(size_t read_buffer, size_t write_buffer);
/* Ends the request and frees its server. */
void fake_request_free(ss_request *req);

#endif
