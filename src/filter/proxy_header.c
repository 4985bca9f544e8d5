/* PROXY protocol v1/v2 header parser: see filter/proxy_header.h for the
 * rules taken from the specification and the decisions where it leaves a
 * choice. */
#include "filter/proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

/* ------------------------------------------------------------------------ */
/* Shared                                                                   */
/* ------------------------------------------------------------------------ */

/* What a piece of the input is: valid as it stands, a valid beginning that
 * needs more bytes, or never valid. */
typedef enum { PIECE_BAD, PIECE_PARTIAL, PIECE_OK } piece;

/* Compares buf[0, len) with the first bytes of `want` (want_len long). */
static piece match_prefix(const unsigned char *buf, size_t len, const void *want, size_t want_len)
{
    size_t n = len < want_len ? len : want_len;
    if (memcmp(buf, want, n) != 0)
        return PIECE_BAD;
    return n < want_len ? PIECE_PARTIAL : PIECE_OK;
}

static void clear_header(ss__proxy_header *out, int version)
{
    memset(out, 0, sizeof *out);
    out->version = version;
    out->local = true;
}

static void set_inet(struct sockaddr_storage *ss, socklen_t *len, const void *addr, unsigned port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof *ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    memcpy(&sin->sin_addr, addr, 4);
    *len = sizeof *sin;
}

static void set_inet6(struct sockaddr_storage *ss, socklen_t *len, const void *addr, unsigned port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    memcpy(&sin6->sin6_addr, addr, 16);
    *len = sizeof *sin6;
}

/* ------------------------------------------------------------------------ */
/* Version 1: one text line (spec 2.1)                                      */
/* ------------------------------------------------------------------------ */

/* The fields of a v1 line, in order. */
enum { F_PROXY, F_PROTOCOL, F_SOURCE, F_DESTINATION, F_SOURCE_PORT, F_DESTINATION_PORT, F_COUNT };

typedef enum { PROTO_NONE, PROTO_TCP4, PROTO_TCP6, PROTO_UNKNOWN } v1_protocol;

/* A decimal number without heading zeroes, at most `max`; a prefix of one
 * when partial. Its value in *value. */
static piece decimal(const char *s, size_t n, unsigned max, bool partial, unsigned *value)
{
    unsigned v = 0;
    if (n == 0)
        return partial ? PIECE_PARTIAL : PIECE_BAD;
    if (s[0] == '0' && n > 1)
        return PIECE_BAD; /* "Heading zeroes are not permitted" */
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PIECE_BAD;
        v = v * 10 + (unsigned)(s[i] - '0');
        if (v > max)
            return PIECE_BAD;
    }
    *value = v;
    return partial ? PIECE_PARTIAL : PIECE_OK;
}

/* "exactly 4 integers in the range [0..255] inclusive written in decimal
 * representation separated by exactly one dot", no heading zeroes. */
static piece ipv4_text(const char *s, size_t n, bool partial, struct in_addr *addr)
{
    size_t start = 0;
    unsigned octet, dots = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        bool last = i == n;
        if (decimal(s + start, i - start, 255, last && partial, &octet) == PIECE_BAD)
            return PIECE_BAD;
        if (!last && ++dots > 3)
            return PIECE_BAD;
        start = i + 1;
    }
    if (partial)
        return PIECE_PARTIAL;
    if (dots != 3)
        return PIECE_BAD;
    char text[16];
    memcpy(text, s, n); /* n <= 15: four octets of at most 3 digits and 3 dots */
    text[n] = '\0';
    return inet_pton(AF_INET, text, addr) == 1 ? PIECE_OK : PIECE_BAD;
}

/* True when each of s[0, n) is one of `set` (s need not end in a NUL). */
static bool all_of(const char *s, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || strchr(set, s[i]) == NULL)
            return false;
    return true;
}

/* IPv6 as inet_pton reads it. A beginning is valid when one of a few short
 * endings completes it: each ends the group or dotted quad under way and
 * closes the address (with "::" when there is room). */
static piece ipv6_text(const char *s, size_t n, bool partial, struct in6_addr *addr)
{
    static const char *const endings[] = {
        "", "0", ":", "::", ".0", "0.0", ".0.0", "0.0.0", ".0.0.0", "0.0.0.0",
    };
    char text[INET6_ADDRSTRLEN + 8];
    if (n >= INET6_ADDRSTRLEN || !all_of(s, n, "0123456789abcdefABCDEF:."))
        return PIECE_BAD; /* inet_pton would stop at a NUL and accept less */
    memcpy(text, s, n);
    text[n] = '\0';
    if (!partial)
        return inet_pton(AF_INET6, text, addr) == 1 ? PIECE_OK : PIECE_BAD;
    struct in6_addr scratch;
    for (size_t i = 0; i < sizeof endings / sizeof endings[0]; i++) {
        memcpy(text + n, endings[i], strlen(endings[i]) + 1);
        if (inet_pton(AF_INET6, text, &scratch) == 1)
            return PIECE_PARTIAL;
    }
    return PIECE_BAD;
}

/* "TCP4", "TCP6" or "UNKNOWN" (or a beginning of one). */
static piece protocol_name(const char *s, size_t n, bool partial, v1_protocol *proto)
{
    static const struct {
        const char *name;
        v1_protocol proto;
    } names[] = {{"TCP4", PROTO_TCP4}, {"TCP6", PROTO_TCP6}, {"UNKNOWN", PROTO_UNKNOWN}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t len = strlen(names[i].name);
        if (partial && n <= len && memcmp(s, names[i].name, n) == 0)
            return PIECE_PARTIAL;
        if (!partial && n == len && memcmp(s, names[i].name, n) == 0) {
            *proto = names[i].proto;
            return PIECE_OK;
        }
    }
    return PIECE_BAD;
}

/* The parsed pieces of a v1 line. */
typedef struct v1_line {
    v1_protocol proto;
    struct in6_addr addr[2]; /* an in_addr in the first bytes for TCP4 */
    unsigned port[2];
} v1_line;

/* Checks field `index` (s, n); partial: the line stops inside it. */
static piece v1_field(v1_line *line, int index, const char *s, size_t n, bool partial)
{
    switch (index) {
    case F_PROXY:
        if (n > 5 || (!partial && n < 5) || memcmp(s, "PROXY", n) != 0)
            return PIECE_BAD;
        return partial ? PIECE_PARTIAL : PIECE_OK;
    case F_PROTOCOL:
        return protocol_name(s, n, partial, &line->proto);
    case F_SOURCE:
    case F_DESTINATION: {
        void *addr = &line->addr[index - F_SOURCE];
        if (line->proto == PROTO_TCP4)
            return ipv4_text(s, n, partial, addr);
        return ipv6_text(s, n, partial, addr);
    }
    case F_SOURCE_PORT:
    case F_DESTINATION_PORT:
        return decimal(s, n, 65535, partial, &line->port[index - F_SOURCE_PORT]);
    default:
        return PIECE_BAD; /* a field after the destination port */
    }
}

/* The shortest a TCP4/TCP6 field (F_SOURCE and after) can be: "0.0.0.0",
 * "::", "0". */
static size_t v1_field_shortest(const v1_line *line, int index)
{
    if (index >= F_SOURCE_PORT)
        return 1;
    return line->proto == PROTO_TCP4 ? 7 : 2;
}

/* The fewest bytes that can still follow when the line stops `have` bytes
 * into field `index` (F_SOURCE or after): the field at its shortest, the
 * next fields at theirs, then CRLF. */
static size_t v1_shortest_rest(const v1_line *line, int index, size_t have)
{
    size_t rest = 2; /* CRLF */
    size_t shortest = v1_field_shortest(line, index);
    if (shortest > have)
        rest += shortest - have;
    for (int i = index + 1; i < F_COUNT; i++)
        rest += 1 + v1_field_shortest(line, i);
    return rest;
}

/* Checks the line text[0, n) (CRLF not included). complete: the CRLF
 * follows; else the bytes stop here, and PIECE_PARTIAL says they can still
 * become a valid line that fits in SS__PROXY_V1_MAX bytes. */
static piece v1_check(const char *text, size_t n, bool complete, v1_line *line)
{
    size_t start = 0;
    int index = 0;
    line->proto = PROTO_NONE;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && text[i] != ' ')
            continue;
        bool partial = i == n && !complete;
        piece p = v1_field(line, index, text + start, i - start, partial);
        if (p == PIECE_BAD)
            return PIECE_BAD;
        if (index == F_PROTOCOL && p == PIECE_OK && line->proto == PROTO_UNKNOWN)
            return complete ? PIECE_OK : PIECE_PARTIAL; /* the rest is ignored */
        if (partial && index >= F_SOURCE &&
            n + v1_shortest_rest(line, index, i - start) > SS__PROXY_V1_MAX)
            return PIECE_BAD; /* could end only past the longest line */
        if (partial)
            return PIECE_PARTIAL;
        start = i + 1;
        index++;
    }
    return index == F_COUNT ? PIECE_OK : PIECE_BAD;
}

/* The end of the line: the index just past its CRLF, 0 if not there yet,
 * or SS_EPROXY for a lone CR or LF, or no CRLF within the longest line. */
static ssize_t v1_line_end(const unsigned char *buf, size_t len)
{
    size_t limit = len < SS__PROXY_V1_MAX ? len : SS__PROXY_V1_MAX;
    for (size_t i = 0; i < limit; i++) {
        if (buf[i] == '\n')
            return SS_EPROXY; /* an LF without its CR (a CR's LF is skipped below) */
        if (buf[i] != '\r')
            continue;
        if (i + 1 >= SS__PROXY_V1_MAX)
            return SS_EPROXY; /* the LF would be byte 108 */
        if (i + 1 == len)
            return 0;
        return buf[i + 1] == '\n' ? (ssize_t)(i + 2) : SS_EPROXY;
    }
    return len >= SS__PROXY_V1_MAX ? SS_EPROXY : 0;
}

static ssize_t parse_v1(const unsigned char *buf, size_t len, ss__proxy_header *out)
{
    ssize_t end = v1_line_end(buf, len);
    if (end < 0)
        return end;
    bool complete = end > 0;
    size_t n = complete ? (size_t)end - 2 : len;
    if (!complete && len > 0 && buf[len - 1] == '\r')
        n--; /* the CR of the CRLF under way */
    v1_line line;
    piece p = v1_check((const char *)buf, n, complete, &line);
    if (p == PIECE_BAD)
        return SS_EPROXY;
    if (p == PIECE_PARTIAL)
        return 0;
    clear_header(out, 1);
    if (line.proto == PROTO_UNKNOWN)
        return end;
    out->local = false;
    void (*set)(struct sockaddr_storage *, socklen_t *, const void *, unsigned) =
        line.proto == PROTO_TCP4 ? set_inet : set_inet6;
    set(&out->source, &out->source_len, &line.addr[0], line.port[0]);
    set(&out->destination, &out->destination_len, &line.addr[1], line.port[1]);
    return end;
}

/* ------------------------------------------------------------------------ */
/* Version 2: binary (spec 2.2)                                             */
/* ------------------------------------------------------------------------ */

static const unsigned char v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                               0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

enum { V2_CMD_LOCAL = 0x0, V2_CMD_PROXY = 0x1 };
enum { V2_AF_UNSPEC = 0x0, V2_AF_INET = 0x1, V2_AF_INET6 = 0x2, V2_AF_UNIX = 0x3 };
enum { V2_UNSPEC = 0x0, V2_STREAM = 0x1, V2_DGRAM = 0x2 };
enum { V2_UNIX_PATH = 108 }; /* "The addresses are exactly 108 bytes each" */

static unsigned be16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* The address block's size for the family byte, or -1 for a family or a
 * transport the spec does not define. */
static long v2_address_size(unsigned family_byte)
{
    static const long sizes[] = {0, 12, 36, 2 * V2_UNIX_PATH};
    unsigned family = family_byte >> 4, transport = family_byte & 0xF;
    if (family > V2_AF_UNIX || transport > V2_DGRAM)
        return -1;
    return sizes[family];
}

/* True when area[0, n) is a sequence of whole TLVs (type, 16-bit length,
 * value) that ends exactly at n. */
static bool tlvs_well_formed(const unsigned char *area, size_t n)
{
    size_t at = 0;
    while (at < n) {
        if (n - at < 3 || be16(area + at + 1) > n - at - 3)
            return false;
        at += 3 + be16(area + at + 1);
    }
    return true;
}

/* CRC32C (Castagnoli, RFC 4960 appendix B) of header[0, n), with the four
 * bytes at `zeroed` read as zeroes (spec 2.2.3). Bitwise: the TLV is rare. */
static uint32_t crc32c_zeroing(const unsigned char *header, size_t n, size_t zeroed)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        bool in_field = i >= zeroed && i - zeroed < 4;
        crc ^= in_field ? 0 : header[i];
        for (int bit = 0; bit < 8; bit++)
            crc = crc >> 1 ^ (0x82F63B78u & (0u - (crc & 1)));
    }
    return ~crc;
}

/* A CRC32C TLV, when present, must hold the header's checksum. */
static bool checksum_holds(const ss__proxy_header *h, const unsigned char *header, size_t n)
{
    size_t len;
    const unsigned char *value = ss__proxy_tlv(h, SS__PP2_TYPE_CRC32C, &len);
    if (value == NULL)
        return true;
    if (len != 4)
        return false;
    uint32_t sent =
        (uint32_t)value[0] << 24 | (uint32_t)value[1] << 16 | (uint32_t)value[2] << 8 | value[3];
    return crc32c_zeroing(header, n, (size_t)(value - header)) == sent;
}

/* An AF_UNIX address from its 108-byte field: a path, a Linux abstract
 * name (leading NUL; trailing NUL padding dropped) or unnamed (all NULs). */
static bool set_unix(struct sockaddr_storage *ss, socklen_t *len, const unsigned char *field)
{
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    size_t n = V2_UNIX_PATH;
    while (n > 0 && field[n - 1] == '\0')
        n--;
    bool abstract = n > 0 && field[0] == '\0';
    if (!abstract)
        n = strnlen((const char *)field, V2_UNIX_PATH);
#ifndef __linux__
    if (abstract)
        return false; /* no abstract names here */
#endif
    if (n > sizeof un->sun_path)
        return false; /* longer than this system's sun_path */
    memset(ss, 0, sizeof *ss);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, field, n);
    /* a path keeps its terminating NUL when there is room for it */
    size_t terminator = !abstract && n > 0 && n < sizeof un->sun_path ? 1 : 0;
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + terminator);
    return true;
}

/* Fills out's addresses from a PROXY command's address block. */
static bool v2_addresses(unsigned family_byte, const unsigned char *a, ss__proxy_header *out)
{
    switch (family_byte >> 4) {
    case V2_AF_INET:
        set_inet(&out->source, &out->source_len, a, be16(a + 8));
        set_inet(&out->destination, &out->destination_len, a + 4, be16(a + 10));
        return true;
    case V2_AF_INET6:
        set_inet6(&out->source, &out->source_len, a, be16(a + 32));
        set_inet6(&out->destination, &out->destination_len, a + 16, be16(a + 34));
        return true;
    default: /* V2_AF_UNIX */
        return set_unix(&out->source, &out->source_len, a) &&
               set_unix(&out->destination, &out->destination_len, a + V2_UNIX_PATH);
    }
}

/* The fixed 16 bytes, as far as they have come: PIECE_OK when all are
 * there and say a LOCAL or PROXY header of version 2. */
static piece v2_fixed_part(const unsigned char *buf, size_t len)
{
    piece p = match_prefix(buf, len, v2_signature, sizeof v2_signature);
    if (p != PIECE_OK)
        return p;
    if (len > 12 && ((buf[12] >> 4) != 2 || (buf[12] & 0xF) > V2_CMD_PROXY))
        return PIECE_BAD; /* "the receiver must only accept this value" (2) */
    bool proxy = len > 12 && (buf[12] & 0xF) == V2_CMD_PROXY;
    if (len > 13 && proxy && v2_address_size(buf[13]) < 0)
        return PIECE_BAD; /* family or transport "rejected as invalid by receivers" */
    if (len >= SS__PROXY_V2_FIXED && proxy && (long)be16(buf + 14) < v2_address_size(buf[13]))
        return PIECE_BAD; /* too short for the family's addresses */
    return len < SS__PROXY_V2_FIXED ? PIECE_PARTIAL : PIECE_OK;
}

static ssize_t parse_v2(const unsigned char *buf, size_t len, ss__proxy_header *out)
{
    piece p = v2_fixed_part(buf, len);
    if (p != PIECE_OK)
        return p == PIECE_BAD ? SS_EPROXY : 0;
    size_t total = SS__PROXY_V2_FIXED + be16(buf + 14);
    if (len < total)
        return 0;
    bool proxy = (buf[12] & 0xF) == V2_CMD_PROXY;
    long address_size = v2_address_size(buf[13]);
    const unsigned char *block = buf + SS__PROXY_V2_FIXED;
    size_t block_len = total - SS__PROXY_V2_FIXED;
    clear_header(out, 2);
    bool has_tlvs = address_size >= 0 && (size_t)address_size <= block_len &&
                    tlvs_well_formed(block + address_size, block_len - (size_t)address_size);
    if (has_tlvs && block_len > (size_t)address_size) {
        out->tlvs = block + address_size;
        out->tlvs_len = block_len - (size_t)address_size;
    }
    if (!proxy) /* LOCAL: "discard the protocol block including the family" */
        return (ssize_t)total;
    if (!has_tlvs || !checksum_holds(out, buf, total))
        return SS_EPROXY;
    if ((buf[13] >> 4) == V2_AF_UNSPEC || (buf[13] & 0xF) == V2_UNSPEC)
        return (ssize_t)total; /* "The receiver should ignore address information" */
    out->local = false;
    if (!v2_addresses(buf[13], block, out))
        return SS_EPROXY;
    return (ssize_t)total;
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                             */
/* ------------------------------------------------------------------------ */

ssize_t ss__proxy_parse(const unsigned char *buf, size_t len, ss__proxy_header *out)
{
    if (len == 0)
        return 0;
    if (buf[0] == v2_signature[0])
        return parse_v2(buf, len, out);
    if (match_prefix(buf, len, "PROXY ", 6) == PIECE_BAD)
        return SS_EPROXY;
    return parse_v1(buf, len, out);
}

const unsigned char *ss__proxy_tlv(const ss__proxy_header *h, unsigned type, size_t *len)
{
    if (h->tlvs == NULL)
        return NULL;
    for (size_t at = 0; h->tlvs_len - at >= 3;) {
        size_t value_len = be16(h->tlvs + at + 1);
        if (value_len > h->tlvs_len - at - 3)
            return NULL; /* cannot happen after ss__proxy_parse; never walk out */
        if (h->tlvs[at] == type) {
            if (len != NULL)
                *len = value_len;
            return h->tlvs + at + 3;
        }
        at += 3 + value_len;
    }
    return NULL;
}
