/* libFuzzer target: the PROXY protocol header parser, which reads the
 * first bytes of every connection on a listener behind a load balancer,
 * before anything is known of the sender. */
#include "filter/proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* Walks the TLV area on its own: whole TLVs, ending exactly at its end. */
static void walk_tlvs(const unsigned char *area, size_t len)
{
    size_t at = 0;
    while (at < len) {
        check(len - at >= 3);
        size_t value_len = (size_t)area[at + 1] << 8 | area[at + 2];
        check(value_len <= len - at - 3);
        at += 3 + value_len;
    }
    check(at == len);
}

/* The TLV area lies inside the header, ends with it, is whole TLVs, and
 * every lookup stays inside it. */
static void check_tlvs(const ss__proxy_header *h, const uint8_t *data, size_t n)
{
    if (h->tlvs == NULL) {
        check(h->tlvs_len == 0);
        return;
    }
    check(h->version == 2 && h->tlvs >= data + 16 && h->tlvs + h->tlvs_len == data + n);
    walk_tlvs(h->tlvs, h->tlvs_len);
    for (unsigned type = 0; type < 256; type++) {
        size_t len = 0;
        const unsigned char *value = ss__proxy_tlv(h, type, &len);
        if (value != NULL)
            check(value >= h->tlvs + 3 && value + len <= h->tlvs + h->tlvs_len &&
                  value[-3] == type);
    }
}

/* An accepted TCP4 line is canonical: written back, it is the same bytes. */
static void check_v1_tcp4(const ss__proxy_header *h, const uint8_t *data, size_t n)
{
    const struct sockaddr_in *s = (const struct sockaddr_in *)&h->source;
    const struct sockaddr_in *d = (const struct sockaddr_in *)&h->destination;
    char src[16], dst[16], line[128];
    check(inet_ntop(AF_INET, &s->sin_addr, src, sizeof src) != NULL);
    check(inet_ntop(AF_INET, &d->sin_addr, dst, sizeof dst) != NULL);
    int len = snprintf(line, sizeof line, "PROXY TCP4 %s %s %u %u\r\n", src, dst,
                       ntohs(s->sin_port), ntohs(d->sin_port));
    check(len > 0 && (size_t)len == n && memcmp(line, data, n) == 0);
}

static void check_header(const ss__proxy_header *h, const uint8_t *data, size_t n)
{
    check(h->version == 1 || h->version == 2);
    if (h->version == 1)
        check(n <= SS__PROXY_V1_MAX && data[n - 2] == '\r' && data[n - 1] == '\n');
    else
        check(n == 16 + ((size_t)data[14] << 8 | data[15]));
    if (h->local) {
        check(h->source_len == 0 && h->destination_len == 0);
    } else {
        check(h->source_len > 0 && h->source_len <= sizeof h->source);
        check(h->source.ss_family == h->destination.ss_family);
    }
    check_tlvs(h, data, n);
    if (h->version == 1 && !h->local && h->source.ss_family == AF_INET)
        check_v1_tcp4(h, data, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ss__proxy_header h, untouched;
    memset(&h, 0xA5, sizeof h);
    memcpy(&untouched, &h, sizeof h);
    ssize_t n = ss__proxy_parse(data, size, &h);
    check(n == 0 || n == SS_EPROXY || (n > 0 && (size_t)n <= size));
    check(n > 0 || memcmp(&h, &untouched, sizeof h) == 0); /* *out only for a header */
    if (n > 0) {
        check_header(&h, data, (size_t)n);
        ss__proxy_header cut;
        check(ss__proxy_parse(data, (size_t)n - 1, &cut) == 0); /* one byte short: need more */
        check(ss__proxy_parse(data, (size_t)n / 2, &cut) == 0);
    } else if (n == 0 && size > 0) {
        ss__proxy_header cut; /* a beginning's beginning is one too */
        check(ss__proxy_parse(data, size - 1, &cut) == 0);
    }
    return 0;
}
