/* The tutorial's chat server: every line a client sends goes to every
 * connected client as "ADDRESS: line". It needs threads (--mode threading,
 * the default, or pool): each client's handler waits for that client's
 * lines while the others talk.
 *
 * Python's version sends to each client in turn from the sender's thread,
 * so one client that stops reading stalls everybody. Here each client has
 * a mailbox, bounded in bytes, and a thread of its own that delivers it; a
 * broadcast only drops the message into the mailboxes and never waits. A
 * full mailbox means the client has stopped reading: it is disconnected.
 * And a client may only speak while its own mailbox is half empty, so a
 * flood is slowed to the pace at which its sender reads. */
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAILBOX_LIMIT (1024 * 1024) /* bytes waiting for one client */
#define LINE_LIMIT    1024          /* longest line accepted, newline included */

static cli_options opts;

typedef struct message {
    struct message *next;
    size_t len;
    char text[];
} message;

/* docs:begin client */
typedef struct client {
    ss_request *req;
    struct client *next;  /* in the registry, under registry_lock */
    pthread_t courier;    /* delivers the mailbox */
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;  /* mail, or closing: for the courier */
    pthread_cond_t room;  /* the mailbox emptied, or closing: for the handler */
    message *first, *last;
    size_t queued;
    bool closing; /* the courier stops; the mailbox is dropped */
} client;
/* docs:end client */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static client *registry;
static bool registry_closed; /* shutting down: newcomers are sent away */

/* ---- one client's mailbox and courier ---- */

/* Ends the connection from any thread: the handler's read_line and the
 * courier's send return, and both threads finish normally. Only ever
 * called while the client is registered, i.e. before its request ends and
 * its socket is closed. */
static void disconnect(client *c)
{
    shutdown(ss_request_fileno(c->req), SHUT_RDWR);
}

/* docs:begin courier */
/* Waits for mail and takes all of it; NULL once the client is closing. */
static message *take_all(client *c)
{
    pthread_mutex_lock(&c->lock);
    while (c->first == NULL && !c->closing)
        pthread_cond_wait(&c->wake, &c->lock);
    message *batch = c->closing ? NULL : c->first;
    if (batch != NULL) {
        c->first = c->last = NULL;
        c->queued = 0;
        pthread_cond_signal(&c->room);
    }
    pthread_mutex_unlock(&c->lock);
    return batch;
}

/* Writes a batch into the request's write buffer and flushes it once, so
 * a burst of messages costs a few large sends, not one each. */
static int send_batch(ss_request *req, message *batch)
{
    ssize_t rc = 0;
    for (message *m = batch, *next; m != NULL; m = next) {
        next = m->next;
        if (rc >= 0)
            rc = ss_request_write(req, m->text, m->len);
        free(m);
    }
    return rc < 0 ? (int)rc : ss_request_flush(req);
}

/* The courier: the only thread that writes to this client. It writes while
 * the client's handler reads, which the library allows. */
static void *deliver(void *arg)
{
    client *c = arg;
    message *batch;
    while ((batch = take_all(c)) != NULL) {
        if (send_batch(c->req, batch) < 0) {
            disconnect(c); /* gone: make its handler see it too */
            break;
        }
    }
    return NULL;
}
/* docs:end courier */

/* docs:begin post */
/* Puts a copy of text in the mailbox, or disconnects the client if it has
 * let too much pile up. Never waits for the client. */
static void post(client *c, const char *text, size_t len)
{
    message *m = malloc(sizeof *m + len);
    pthread_mutex_lock(&c->lock);
    if (m != NULL && !c->closing && c->queued + len <= MAILBOX_LIMIT) {
        m->next = NULL;
        m->len = len;
        memcpy(m->text, text, len);
        *(c->first != NULL ? &c->last->next : &c->first) = m;
        c->last = m;
        c->queued += len;
        pthread_cond_signal(&c->wake);
        m = NULL;
    } else if (!c->closing) {
        cli_log(&opts, "%s is not reading: disconnected", cli_peer(c->req));
        c->closing = true; /* its courier stops; its handler sees the end */
        pthread_cond_signal(&c->wake);
        pthread_cond_signal(&c->room);
        disconnect(c);
    }
    pthread_mutex_unlock(&c->lock);
    free(m);
}
/* docs:end post */

/* A client may speak only while its own mailbox is at most half full: it
 * cannot talk faster than it listens, so a flood slows its sender down
 * instead of filling everybody's mailbox. This waits for that client
 * alone, never for anybody else. */
static void wait_to_speak(client *c)
{
    pthread_mutex_lock(&c->lock);
    while (c->queued > MAILBOX_LIMIT / 2 && !c->closing)
        pthread_cond_wait(&c->room, &c->lock);
    pthread_mutex_unlock(&c->lock);
}

/* ---- the registry of connected clients ---- */

/* docs:begin broadcast */
static void broadcast(const char *text, size_t len)
{
    pthread_mutex_lock(&registry_lock);
    for (client *c = registry; c != NULL; c = c->next)
        post(c, text, len);
    pthread_mutex_unlock(&registry_lock);
}
/* docs:end broadcast */

static void unregister(client *c)
{
    pthread_mutex_lock(&registry_lock);
    client **p = &registry;
    while (*p != c)
        p = &(*p)->next;
    *p = c->next;
    pthread_mutex_unlock(&registry_lock);
}

/* docs:begin stopping */
/* At shutdown: every handler is waiting for its client, so end them all,
 * and closing the server need not wait for clients to leave. */
static void disconnect_all(ss_server *srv)
{
    (void)srv;
    pthread_mutex_lock(&registry_lock);
    registry_closed = true;
    for (client *c = registry; c != NULL; c = c->next)
        disconnect(c);
    pthread_mutex_unlock(&registry_lock);
}
/* docs:end stopping */

/* ---- the handler ---- */

static int setup(ss_request *req, void *data)
{
    (void)data;
    client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->req = req;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    pthread_cond_init(&c->room, NULL);
    int rc = pthread_create(&c->courier, NULL, deliver, c);
    if (rc != 0) {
        pthread_cond_destroy(&c->room);
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return -rc;
    }
    pthread_mutex_lock(&registry_lock);
    c->next = registry;
    registry = c;
    if (registry_closed)
        disconnect(c); /* accepted just as the server stopped */
    pthread_mutex_unlock(&registry_lock);
    ss_request_set_data(req, c);
    cli_log(&opts, "%s joined", cli_peer(req));
    return 0;
}

/* docs:begin handle */
/* Sends "ADDRESS: line\n" to everybody, the sender included. The line is
 * len bytes, NUL bytes included: copied by length, never as a C string. */
static void say(ss_request *req, const char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len == 0)
        return;
    const char *peer = cli_peer(req);
    size_t peer_len = strnlen(peer, 150); /* addresses and socket paths are shorter */
    char text[150 + 2 + LINE_LIMIT + 1];
    memcpy(text, peer, peer_len);
    memcpy(text + peer_len, ": ", 2);
    memcpy(text + peer_len + 2, line, len);
    text[peer_len + 2 + len] = '\n';
    broadcast(text, peer_len + 2 + len + 1);
}

static int handle(ss_request *req, void *data)
{
    (void)data;
    client *c = ss_request_data(req);
    char line[LINE_LIMIT + 1];
    ssize_t n;
    while ((n = ss_request_read_line(req, line, sizeof line)) != 0) {
        if (n == SS_ELINETOOLONG) {
            static const char refusal[] = "error: line too long\n";
            post(c, refusal, sizeof refusal - 1);
        } else if (n < 0) {
            return cli_request_ends(&opts, req, n); /* reset, timed out, stopping */
        } else {
            wait_to_speak(c);
            say(req, line, (size_t)n);
        }
    }
    cli_log(&opts, "%s left", cli_peer(req)); /* or was disconnected by us */
    return 0;
}
/* docs:end handle */

static int finish(ss_request *req, void *data)
{
    (void)data;
    client *c = ss_request_data(req);
    unregister(c);
    pthread_mutex_lock(&c->lock);
    c->closing = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->courier, NULL);
    for (message *m = c->first, *next; m != NULL; m = next) {
        next = m->next;
        free(m);
    }
    pthread_cond_destroy(&c->room);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return 0;
}

static void configure(ss_server *srv)
{
    ss_server_set_write_buffer_size(srv, 64 * 1024); /* for send_batch */
}

static const ss_handler chat_handler = {
    .version = SS_HANDLER_VERSION, .setup = setup, .handle = handle, .finish = finish};

int main(int argc, char **argv)
{
    int rc = cli_parse(argc, argv, "chat_server", &opts);
    if (rc >= 0)
        return rc;
    if (opts.processes != 0) {
        /* each worker process would hold a room of its own */
        fprintf(stderr, "chat_server: --mode prefork and --processes cannot chat: the clients "
                        "of one room must share a process\n");
        return 2;
    }
    const char *mode = ss_dispatch_name(opts.mode);
    if (strcmp(mode, "sync") == 0 || strcmp(mode, "forking") == 0) {
        /* one client at a time, or each in its own process: nobody to talk to */
        fprintf(stderr, "chat_server: --mode %s cannot chat: use threading or pool\n", mode);
        return 2;
    }
    for (int i = 0; opts.listens[i] != NULL; i++) {
        const char *url = opts.listens[i];
        if (strncmp(url, "udp:", 4) == 0 || strncmp(url, "unixgram:", 9) == 0) {
            /* a datagram is a request of its own: no connection to chat on */
            fprintf(stderr, "chat_server: --listen %s cannot chat: use tcp:// or unix:\n", url);
            return 2;
        }
    }
    opts.configure = configure;
    opts.stopping = disconnect_all;
    return cli_serve(&opts, &chat_handler, NULL);
}
