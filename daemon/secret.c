/* SPDX-License-Identifier: MIT */
#include "secret.h"

#include <stdint.h>
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
