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
 * value. No lock that a killed process could leave held: a writer's
 * section is two copies of a few KiB, and one that never ends (its
 * process killed in it) is taken over after SPIN_LIMIT yields. Within
 * one process readers and writers are serialized by the config's
 * reload_lock, so the plain copies race only with other processes. */
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
    atomic_uint seq;          /* even: stable; odd: being written */
    char cert_file[PATH_MAX]; /* the names the last reload loaded */
    char key_file[PATH_MAX];  /* "": the key is in cert_file */
};

bool ss__tls_shared_fits(const char *cert_file, const char *key_file)
{
    return strlen(cert_file) < PATH_MAX && (key_file == NULL || strlen(key_file) < PATH_MAX);
}

static void write_names(struct ss__tls_shared *sh, const char *cert_file, const char *key_file)
{
    strcpy(sh->cert_file, cert_file);
    strcpy(sh->key_file, key_file != NULL ? key_file : "");
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
    unsigned odd = begin_write(sh);
    atomic_thread_fence(memory_order_release);
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
    memcpy(buf, sh->cert_file, PATH_MAX);
    memcpy(buf + PATH_MAX, sh->key_file, PATH_MAX);
    atomic_thread_fence(memory_order_acquire);
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
    buf[PATH_MAX - 1] = buf[2 * PATH_MAX - 1] = '\0';
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
