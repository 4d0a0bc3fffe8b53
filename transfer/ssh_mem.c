/*
 * ssh_mem.c: the memory libssh2 allocates for one session (libssh2_session_init_ex's
 * callbacks). Bulk transfers allocate and free a ~32 KiB block per SSH packet and per SFTP
 * packet; from glibc those come from the top of the heap, which shrinks back to the system and
 * grows again at every swing of the read-ahead, so every few packets cost fresh pages (page
 * faults and zeroing: about a tenth of a download's CPU). Freed blocks of 4 to 64 KiB are kept
 * here instead, in 4 KiB size classes, and handed out again; the cache never holds more than
 * what the session had in use at once (a block is only cached after it was used), at most
 * PB_SSH_MEM_CAP bytes, and is emptied when the session is freed.
 * Role: part of transfer/ssh (ssh_int.h). Prerequisites: libssh2 1.10.
 */
#include <stdlib.h>
#include <string.h>

#include "ssh_int.h"

#define STEP 4096u

typedef struct hdr {
    size_t size; /* bytes asked for */
    size_t cls;  /* size class (capacity cls * STEP), 0: not pooled */
} hdr;
/* Keeps the caller's memory 16-byte aligned, as malloc's is. */
#define HDR_SIZE ((sizeof(hdr) + 15u) & ~(size_t)15u)

typedef struct free_block {
    struct free_block *next;
} free_block;

static size_t class_of(size_t count)
{
    if (count < STEP || count > PB_SSH_MEM_CLASSES * STEP)
        return 0;
    return (count + STEP - 1) / STEP;
}

static void *user_of(hdr *h)
{
    return (unsigned char *)h + HDR_SIZE;
}

static hdr *hdr_of(void *p)
{
    return (hdr *)((unsigned char *)p - HDR_SIZE);
}

static void *mem_alloc(pb_ssh_mem *m, size_t count)
{
    size_t cls = class_of(count);
    hdr *h = NULL;
    if (cls && m->free[cls - 1]) {
        free_block *b = m->free[cls - 1];
        m->free[cls - 1] = b->next;
        m->cached -= cls * STEP;
        h = (hdr *)b;
    } else {
        h = malloc(HDR_SIZE + (cls ? cls * STEP : count));
        if (!h)
            return NULL;
    }
    h->size = count;
    h->cls = cls;
    return user_of(h);
}

static void mem_free(pb_ssh_mem *m, void *p)
{
    if (!p)
        return;
    hdr *h = hdr_of(p);
    size_t cls = h->cls;
    if (cls && m->cached + cls * STEP <= PB_SSH_MEM_CAP) {
        free_block *b = (free_block *)h;
        b->next = m->free[cls - 1];
        m->free[cls - 1] = b;
        m->cached += cls * STEP;
        return;
    }
    free(h);
}

LIBSSH2_ALLOC_FUNC(pb_ssh__mem_alloc)
{
    pb_ssh *s = *abstract;
    return mem_alloc(&s->mem, count);
}

LIBSSH2_FREE_FUNC(pb_ssh__mem_free)
{
    pb_ssh *s = *abstract;
    mem_free(&s->mem, ptr);
}

LIBSSH2_REALLOC_FUNC(pb_ssh__mem_realloc)
{
    pb_ssh *s = *abstract;
    if (!ptr)
        return mem_alloc(&s->mem, count);
    hdr *h = hdr_of(ptr);
    if (h->cls && count <= h->cls * STEP && class_of(count) == h->cls) {
        h->size = count;
        return ptr;
    }
    if (!h->cls && !class_of(count)) {
        hdr *n = realloc(h, HDR_SIZE + count);
        if (!n)
            return NULL;
        n->size = count;
        return user_of(n);
    }
    void *n = mem_alloc(&s->mem, count);
    if (!n)
        return NULL;
    memcpy(n, ptr, h->size < count ? h->size : count);
    mem_free(&s->mem, ptr);
    return n;
}

void pb_ssh__mem_drain(pb_ssh_mem *m)
{
    for (size_t i = 0; i < PB_SSH_MEM_CLASSES; i++) {
        while (m->free[i]) {
            free_block *b = m->free[i];
            m->free[i] = b->next;
            free(b);
        }
    }
    m->cached = 0;
}
