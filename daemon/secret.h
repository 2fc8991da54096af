/* SPDX-License-Identifier: MIT */
/*
 * secret: memory for credentials (the client secret, tokens, the private
 * key's PEM text). Each allocation has pages of its own, mmap'd and marked
 * MADV_DONTDUMP (left out of core dumps) and MADV_WIPEONFORK (a child made
 * by fork(), such as an on_complete command, sees zeros), and is wiped when
 * freed.
 */
#pragma once

#include <stddef.h>

/* len bytes plus a terminating NUL, zeroed; NULL when out of memory. */
char *secret_alloc(size_t len);
/* A copy of s in secret memory, or NULL. */
char *secret_strdup(const char *s);
char *secret_strndup(const char *s, size_t n);
/* Wipe and unmap. NULL ok. */
void secret_free(char *p);

/*
 * Allocators that wipe what they free (malloc_usable_size bytes), for the
 * libraries that copy the secret or the token into ordinary heap: curl
 * (headers, POST fields, its buffers), jansson (the token endpoint's
 * answer) and OpenSSL (TLS records). A realloc that moves wipes the old
 * block. Installed once, before the libraries allocate anything:
 * secret_allocators_install() for jansson and OpenSSL (main, first thing);
 * http.c hands the secret_wipe_* functions to curl_global_init_mem.
 */
void secret_allocators_install(void);
void *secret_wipe_malloc(size_t n);
void secret_wipe_free(void *p);
void *secret_wipe_realloc(void *p, size_t n);
char *secret_wipe_strdup(const char *s);
void *secret_wipe_calloc(size_t n, size_t size);
