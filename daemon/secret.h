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
