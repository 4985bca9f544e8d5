/* What a TLS server's processes share about its certificate: the file
 * names the last reload loaded and a sequence number that each reload
 * moves on, in one mapping made before any fork (MAP_SHARED), so worker
 * processes (ss_server_set_processes) and forking's children, which are
 * forks of the process that reloads, see its reloads (tls_config.c
 * follows them).
 *
 * A sequence lock: a writer makes seq odd, writes the names, makes it
 * even again (two more than before); a reader copies the names between
 * two loads of seq and keeps the copy only if both are the same even
 * value. The names are atomic bytes, stored with release and loaded with
 * acquire, so a reader that sees any byte of a write also sees its odd
 * seq (no fence: ThreadSanitizer has none). No lock that a killed process
 * could leave held: a writer's section is two copies of a few KiB, and
 * one that never ends (its process killed in it) is taken over after
 * SPIN_LIMIT yields. Within one process readers and writers are also
 * serialized by the config's reload_lock. */
#include "filter/tls_private.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif
/* Yields a waiter makes before it decides the other side is dead. */
#define SPIN_LIMIT 100000

struct ss__tls_shared {
    atomic_uint seq;                 /* even: stable; odd: being written */
    atomic_char cert_file[PATH_MAX]; /* the names the last reload loaded */
    atomic_char key_file[PATH_MAX];  /* "": the key is in cert_file */
};

bool ss__tls_shared_fits(const char *cert_file, const char *key_file)
{
    return strlen(cert_file) < PATH_MAX && (key_file == NULL || strlen(key_file) < PATH_MAX);
}

/* src and its NUL (shorter than PATH_MAX: ss__tls_shared_fits). */
static void store_name(atomic_char *dst, const char *src)
{
    size_t i = 0;
    do
        atomic_store_explicit(&dst[i], src[i], memory_order_release);
    while (src[i++] != '\0');
}

static void write_names(struct ss__tls_shared *sh, const char *cert_file, const char *key_file)
{
    store_name(sh->cert_file, cert_file);
    store_name(sh->key_file, key_file != NULL ? key_file : "");
}

/* Up to its NUL, or PATH_MAX - 1 bytes of a name torn by a writer (the
 * caller's second look at seq rejects it). */
static void load_name(char *dst, const atomic_char *src)
{
    size_t i = 0;
    while (i < PATH_MAX - 1 &&
           (dst[i] = atomic_load_explicit(&src[i], memory_order_acquire)) != '\0')
        i++;
    dst[i] = '\0';
}

int ss__tls_shared_new(struct ss__tls_shared **out, const char *cert_file, const char *key_file)
{
    void *p = mmap(NULL, sizeof **out, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    struct ss__tls_shared *sh = p; /* zeroed: seq 0 */
    write_names(sh, cert_file, key_file);
    *out = sh;
    return 0;
}

void ss__tls_shared_free(struct ss__tls_shared *sh)
{
    if (sh != NULL)
        munmap(sh, sizeof *sh);
}

unsigned ss__tls_shared_seq(const struct ss__tls_shared *sh)
{
    return atomic_load_explicit(&sh->seq, memory_order_acquire);
}

/* seq made odd by us, from an even value; or, past SPIN_LIMIT, taken
 * from a writer that must have died in its section. */
static unsigned begin_write(struct ss__tls_shared *sh)
{
    for (int i = 0; i < SPIN_LIMIT; i++) {
        unsigned seq = atomic_load(&sh->seq);
        if ((seq & 1) == 0 && atomic_compare_exchange_weak(&sh->seq, &seq, seq + 1))
            return seq + 1;
        sched_yield();
    }
    return atomic_fetch_or(&sh->seq, 1) | 1;
}

unsigned ss__tls_shared_publish(struct ss__tls_shared *sh, const char *cert_file,
                                const char *key_file)
{
    unsigned odd = begin_write(sh); /* sequentially consistent: no byte moves above it */
    write_names(sh, cert_file, key_file);
    atomic_store_explicit(&sh->seq, odd + 1, memory_order_release);
    return odd + 1;
}

/* One copy of both names into buf, whole if seq stayed even and the same. */
static bool copy_once(const struct ss__tls_shared *sh, char *buf, unsigned *seq)
{
    unsigned before = atomic_load_explicit(&sh->seq, memory_order_acquire);
    if (before & 1)
        return false;
    load_name(buf, sh->cert_file); /* acquire loads: the last look at seq stays after them */
    load_name(buf + PATH_MAX, sh->key_file);
    *seq = before;
    return atomic_load_explicit(&sh->seq, memory_order_relaxed) == before;
}

int ss__tls_shared_names(const struct ss__tls_shared *sh, char **cert_file, char **key_file,
                         unsigned *seq)
{
    char *buf = malloc(2 * PATH_MAX);
    if (buf == NULL)
        return -ENOMEM;
    int tries = 0;
    while (!copy_once(sh, buf, seq) && ++tries < SPIN_LIMIT)
        sched_yield();
    if (tries == SPIN_LIMIT) { /* a writer stays in its section: next time */
        free(buf);
        return -EAGAIN;
    }
    *cert_file = strdup(buf);
    *key_file = buf[PATH_MAX] != '\0' ? strdup(buf + PATH_MAX) : NULL;
    bool copied = *cert_file != NULL && (buf[PATH_MAX] == '\0' || *key_file != NULL);
    free(buf);
    if (!copied) {
        free(*cert_file);
        free(*key_file);
        *cert_file = *key_file = NULL;
        return -ENOMEM;
    }
    return 0;
}
