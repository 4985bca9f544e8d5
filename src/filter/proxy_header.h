/* src/filter/proxy_header.h — PROXY protocol v1/v2 header parser (pure, no
 * I/O), following the specification published with HAProxy
 * (doc/proxy-protocol.txt, "The PROXY protocol, Versions 1 & 2", 2020/03/05;
 * sections cited as "spec 2.1" etc.). Uses only libc and the public header.
 *
 * The parser never guesses (spec 2: the receiver "MUST not try to guess
 * whether the protocol header is present or not"): bytes that cannot begin
 * a header are refused at once, not waited on.
 *
 * Decisions where the spec leaves a choice, with its words:
 *  - v2 LOCAL (spec 2.2: "The receiver must accept this connection as valid
 *    and must use the real connection endpoints and discard the protocol
 *    block including the family which is ignored"): accepted whatever the
 *    family byte and address block say, local = true. Its TLVs are kept when
 *    they are well formed after the family's address block, else dropped
 *    (tlvs NULL): the block is discarded, so a bad one does not refuse.
 *  - v2 PROXY with family or transport UNSPEC (spec 2.2: "The receiver is
 *    free to accept the connection anyway and use the real endpoint
 *    addresses or to reject it. The receiver should ignore address
 *    information."): accepted as local; what HAProxy itself does.
 *  - v2 PROXY with any other family or transport value, or a command other
 *    than LOCAL/PROXY, or a version other than 2: refused ("must be rejected
 *    as invalid by receivers", "Receivers must drop connections presenting
 *    unexpected values here", "the receiver must only accept this value").
 *  - v2 PROXY whose length is shorter than its family's address block, or
 *    whose TLVs overrun the header: refused.
 *  - v1 UNKNOWN: local; "the receiver must ignore anything presented before
 *    the CRLF is found", but the line still ends within 107 bytes with CRLF.
 *  - v1 addresses: IPv4 exactly four decimal numbers 0-255 without heading
 *    zeroes; IPv6 as inet_pton(AF_INET6) reads it; the family matches the
 *    protocol (TCP4: IPv4, TCP6: IPv6). Ports 0-65535 without heading
 *    zeroes ("0" itself is allowed). Single spaces; CRLF only (spec 2.1:
 *    "must not tolerate a single CR or LF character to end the line").
 *  - v2 AF_UNIX: each 108-byte address becomes a sockaddr_un: a leading NUL
 *    makes it a Linux abstract name (trailing NUL padding dropped); all
 *    NULs, an unnamed address (length offsetof(sun_path)). A path longer
 *    than this system's sun_path, or an abstract name where the system has
 *    none, is refused: it cannot be represented.
 *  - The CRC32C TLV (spec 2.2.3) is checked when present: a mismatch
 *    refuses the header.
 */
#ifndef SS_FILTER_PROXY_HEADER_H
#define SS_FILTER_PROXY_HEADER_H

#include "socketserver/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* The longest v1 line, CRLF included (spec 2.1, "worst case"). */
#define SS__PROXY_V1_MAX 107
/* A v2 header's fixed part: signature, version/command, family, length. */
#define SS__PROXY_V2_FIXED 16
/* The longest v2 header: the fixed part and a 16-bit length. */
#define SS__PROXY_V2_MAX (SS__PROXY_V2_FIXED + 65535)

/* TLV types registered by the spec (2.2). */
enum {
    SS__PP2_TYPE_ALPN = 0x01,
    SS__PP2_TYPE_AUTHORITY = 0x02,
    SS__PP2_TYPE_CRC32C = 0x03,
    SS__PP2_TYPE_NOOP = 0x04,
    SS__PP2_TYPE_UNIQUE_ID = 0x05,
    SS__PP2_TYPE_SSL = 0x20,
    SS__PP2_TYPE_NETNS = 0x30,
};

typedef struct ss__proxy_header {
    int version; /* 1 or 2 */
    bool local;  /* v2 LOCAL, v1 UNKNOWN, or v2 AF_UNSPEC: keep the connection's own addresses */
    struct sockaddr_storage source, destination; /* when !local */
    socklen_t source_len, destination_len;       /* 0 when local */
    const unsigned char *tlvs; /* v2: the TLV area, pointing into the caller's buffer; else NULL */
    size_t tlvs_len;
} ss__proxy_header;

/* Parses the header at the start of buf[0, len).
 * > 0: buf[0, n) is one whole valid header, described in *out (tlvs point
 *      into buf: valid as long as buf is); the bytes after n are the
 *      client's own;
 * 0:   not enough bytes yet: what there is could still start a valid header
 *      (a v1 line is at most SS__PROXY_V1_MAX bytes, a v2 header at most
 *      SS__PROXY_V2_MAX);
 * < 0: it can never be valid: SS_EPROXY.
 * *out is written only when > 0. Pure: thread-safe, no allocation. */
ssize_t ss__proxy_parse(const unsigned char *buf, size_t len, ss__proxy_header *out);

/* The first TLV of `type` in h (v2), its value (pointing into the parsed
 * buffer) and its length in *len (may be NULL); NULL if none, or if h has no
 * TLV area. The TLV area was checked by ss__proxy_parse: the walk stays in
 * it. */
const unsigned char *ss__proxy_tlv(const ss__proxy_header *h, unsigned type, size_t *len);

#endif /* SS_FILTER_PROXY_HEADER_H */
