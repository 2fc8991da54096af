/* SPDX-License-Identifier: MIT */
#include "secret.h"

#include <jansson.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

/* the mapping's size sits in front of the bytes handed out */
#define HEADER 16u

char *secret_alloc(size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	if (len > SIZE_MAX - HEADER - page)
		return NULL;
	size_t size = (len + 1 + HEADER + page - 1) / page * page;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* both are best effort: old kernels lack WIPEONFORK; DONTDUMP has been
	 * there since 3.4 */
	(void)madvise(p, size, MADV_DONTDUMP);
	(void)madvise(p, size, MADV_WIPEONFORK);
	memcpy(p, &size, sizeof(size));
	return (char *)p + HEADER;
}

char *secret_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = secret_alloc(len);
	if (p)
		memcpy(p, s, len);
	return p;
}

char *secret_strdup(const char *s)
{
	return secret_strndup(s, SIZE_MAX);
}

void secret_free(char *p)
{
	if (!p)
		return;
	char *base = p - HEADER;
	size_t size;
	memcpy(&size, base, sizeof(size));
	explicit_bzero(base, size);
	munmap(base, size);
}

void *secret_wipe_malloc(size_t n)
{
	return malloc(n);
}

void secret_wipe_free(void *p)
{
	if (!p)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

void *secret_wipe_realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	size_t old = malloc_usable_size(p);
	if (n == 0) {
		secret_wipe_free(p);
		return NULL;
	}
	if (n <= old)
		return p; /* shrinking in place: the tail is wiped when freed */
	void *q = malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, old);
	secret_wipe_free(p);
	return q;
}

char *secret_wipe_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = malloc(n);
	if (p)
		memcpy(p, s, n);
	return p;
}

void *secret_wipe_calloc(size_t n, size_t size)
{
	return calloc(n, size);
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return secret_wipe_realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	secret_wipe_free(p);
}

void secret_allocators_install(void)
{
	json_set_alloc_funcs(secret_wipe_malloc, secret_wipe_free);
	/* fails (harmlessly) once OpenSSL has allocated: then its frees are
	 * ordinary ones */
	(void)CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
}
