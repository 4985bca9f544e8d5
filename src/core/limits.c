/* What the server takes on: at most max_connections requests at once
 * (at the limit the loop stops polling the listener, or, with an overload
 * reply, accepts and refuses), at most max_per_client per client (IP
 * address, or uid for Unix stream peers), and each request's place
 * (ss__place): its count in ss_stats.active and in its client's entry,
 * given back when the request ends (forking: when the child is reaped).
 * Bookkeeping only: core/admission.c decides, and the request's end gives
 * the place back; this file calls neither.
 *
 * The per-client counts live in a chained hash table with a fixed number
 * of buckets. It holds only clients with a request in flight: an entry is
 * created on a client's first request and freed when its count returns to
 * 0, so its size follows the requests in flight (each of which already
 * costs a descriptor and a thread or process) and never the clients seen.
 * Entries are added by whichever thread admits (the serving thread, or a
 * pool worker accepting for itself) and removed by whichever thread ends
 * the request, under the table's lock. */
#include "core/core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CLIENT_BUCKETS     256
#define MAX_OVERLOAD_REPLY 512

typedef struct client_entry {
    struct client_entry *next;
    ss__client_key key;
    int count;
} client_entry;

struct ss__clients {
    pthread_mutex_t lock;
    client_entry *buckets[CLIENT_BUCKETS];
};

/* ---- options ---- */

static int clients_new(ss__clients **out)
{
    if (*out != NULL)
        return 0;
    ss__clients *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return 0;
}

SS_API int ss_server_set_max_per_client(ss_server *srv, int max)
{
    if (max < 0)
        return -EINVAL;
    if (srv->state >= SS__ACTIVE)
        return SS_ESTATE;
    int rc = max > 0 ? clients_new(&srv->limits.clients) : 0;
    if (rc == 0)
        srv->limits.max_per_client = max;
    return rc;
}

SS_API int ss_server_set_overload_reply(ss_server *srv, const char *message)
{
    size_t len = message != NULL ? strlen(message) : 0;
    if (len > MAX_OVERLOAD_REPLY)
        return -EINVAL;
    if (srv->state >= SS__ACTIVE)
        return SS_ESTATE;
    char *copy = NULL;
    if (message != NULL && (copy = malloc(len + 1)) == NULL)
        return -ENOMEM;
    if (copy != NULL)
        memcpy(copy, message, len + 1);
    free(srv->limits.overload_reply);
    srv->limits.overload_reply = copy;
    srv->limits.overload_reply_len = len;
    return 0;
}

void ss__limits_free(ss_server *srv)
{
    ss__clients *t = srv->limits.clients;
    if (t != NULL) { /* empty by now: every request has given its place back */
        pthread_mutex_destroy(&t->lock);
        free(t);
    }
    free(srv->limits.overload_reply);
}

/* ---- the per-client table ---- */

static client_entry **bucket(ss__clients *t, const ss__client_key *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < key->len; i++)
        h = (h ^ key->bytes[i]) * 16777619u;
    return &t->buckets[h % CLIENT_BUCKETS];
}

static bool same_key(const ss__client_key *a, const ss__client_key *b)
{
    return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

/* Takes one of the client's places; false at its limit or out of memory. */
static bool enter_client(ss__clients *t, const ss__client_key *key, int max)
{
    pthread_mutex_lock(&t->lock);
    client_entry **head = bucket(t, key), *e = *head;
    while (e != NULL && !same_key(&e->key, key))
        e = e->next;
    if (e == NULL && (e = calloc(1, sizeof *e)) != NULL) {
        e->key = *key;
        e->next = *head;
        *head = e;
    }
    bool admitted = e != NULL && e->count < max;
    if (admitted)
        e->count++;
    pthread_mutex_unlock(&t->lock);
    return admitted;
}

static void leave_client(ss__clients *t, const ss__client_key *key)
{
    pthread_mutex_lock(&t->lock);
    client_entry **p = bucket(t, key);
    while (*p != NULL && !same_key(&(*p)->key, key))
        p = &(*p)->next;
    client_entry *e = *p;
    if (e != NULL && --e->count == 0) {
        *p = e->next;
        free(e);
    }
    pthread_mutex_unlock(&t->lock);
}

/* ---- admission ---- */

bool ss__limits_have_room(ss_server *srv)
{
    int max = atomic_load(&srv->limits.max_connections);
    return max == 0 || srv->limits.overload_reply != NULL ||
           atomic_load(&srv->count->active) < (uint_fast64_t)max;
}

/* Takes a place in count.active unless max_connections is reached
 * (`capped`) or, uncapped, whatever the count. Several threads admit at
 * once (the pool's workers accept for themselves), so a capped place is
 * taken by compare-and-swap: the count never passes the limit. */
static bool take_active(ss_server *srv, ss__place *place, bool capped)
{
    int max = atomic_load(&srv->limits.max_connections);
    if (!capped || max == 0) {
        atomic_fetch_add(&srv->count->active, 1);
        place->active = true;
        return true;
    }
    uint_fast64_t n = atomic_load(&srv->count->active);
    do {
        if (n >= (uint_fast64_t)max)
            return false;
    } while (!atomic_compare_exchange_weak(&srv->count->active, &n, n + 1));
    place->active = true;
    return true;
}

bool ss__limits_reserve(ss_server *srv, ss__place *place)
{
    if (srv->limits.overload_reply != NULL || atomic_load(&srv->limits.max_connections) == 0)
        return true; /* the place is taken at admission */
    return take_active(srv, place, true);
}

/* Only in overload-reply mode is a client refused for max_connections:
 * without it, the client's place was reserved before it was taken off
 * the socket (ss__limits_reserve), or the limit was set since, and the
 * client is admitted as the loop that polled for it meant to. The
 * overload test comes first and changes nothing, so a client refused
 * for it was never counted active, not even for a moment. */
static bool over_limit(ss_server *srv)
{
    int max = atomic_load(&srv->limits.max_connections);
    return max > 0 && srv->limits.overload_reply != NULL &&
           atomic_load(&srv->count->active) >= (uint_fast64_t)max;
}

static ss__refusal enter_per_client(ss_server *srv, const ss__arrival *arrival, ss__place *place)
{
    int max = srv->limits.max_per_client;
    ss__client_key key = {0};
    if (max == 0 || ss__names_client(arrival->listener) ||
        arrival->listener->transport->client_key(arrival, &key) < 0 || key.len == 0)
        return SS__ADMITTED; /* names_client: counted once the filter names it */
    if (!enter_client(srv->limits.clients, &key, max))
        return SS__REFUSE_PER_CLIENT;
    place->keyed = true;
    place->key = key;
    return SS__ADMITTED;
}

ss__refusal ss__limits_admit(ss_server *srv, const ss__arrival *arrival, ss__place *place)
{
    if (!place->active && over_limit(srv))
        return SS__REFUSE_LIMIT;
    ss__refusal why = enter_per_client(srv, arrival, place);
    if (why != SS__ADMITTED || place->active)
        return why;
    /* capped only with the reply: another thread may have taken the
     * last place since over_limit looked */
    return take_active(srv, place, srv->limits.overload_reply != NULL) ? SS__ADMITTED
                                                                       : SS__REFUSE_LIMIT;
}

bool ss__place_move(ss_server *srv, ss__place *place, const ss__client_key *key)
{
    if (place->keyed && same_key(&place->key, key))
        return true;
    if (!enter_client(srv->limits.clients, key, srv->limits.max_per_client))
        return false;
    if (place->keyed)
        leave_client(srv->limits.clients, &place->key);
    place->keyed = true;
    place->key = *key;
    return true;
}

void ss__count_refusal(ss_server *srv, ss__refusal why)
{
    ss__counters *c = srv->count;
    atomic_fetch_add(&c->rejected, 1);
    atomic_fetch_add(why == SS__REFUSE_VERIFY  ? &c->rejected_verify
                     : why == SS__REFUSE_LIMIT ? &c->rejected_limit
                                               : &c->rejected_per_client,
                     1);
}

/* ---- the end of a request ---- */

bool ss__place_give_back(ss_server *srv, ss__place *place)
{
    bool wake = false;
    if (place->keyed)
        leave_client(srv->limits.clients, &place->key);
    if (place->active) {
        uint_fast64_t before = atomic_fetch_sub(&srv->count->active, 1);
        int max = atomic_load(&srv->limits.max_connections);
        /* the loop sleeps without the listener at the limit: room now */
        wake = (max > 0 && before >= (uint_fast64_t)max) || atomic_load(&srv->draining);
    }
    *place = (ss__place){0};
    return wake;
}
