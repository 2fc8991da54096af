/* SPDX-License-Identifier: MIT */
/*
 * fuzz-config: invited.conf (daemon/config.c over inih).
 *
 * The input is the file, handed to config_load() through a memfd (its
 * /proc/self/fd path; there are no drop-ins). A file is either loaded, with
 * every value within the limits config.c promises, or refused with a
 * "FILE:LINE: reason" message; and loading it twice gives the same answer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static int load(int fd, const uint8_t *data, size_t size, struct config *c, char **ret_error)
{
	char path[64];
	FUZZ_ASSERT(ftruncate(fd, 0) == 0);
	FUZZ_ASSERT(pwrite(fd, data, size, 0) == (ssize_t)size);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	FUZZ_ASSERT(config_init(c) == 0);
	*ret_error = NULL;
	int r = config_load(c, path, true, ret_error);
	if (r == 0) {
		FUZZ_ASSERT(*ret_error == NULL);
		char *why = NULL;
		if (config_check(c, &why) < 0)
			FUZZ_ASSERT(why && *why);
		free(why);
		/* the limits the rest of the daemon relies on */
		FUZZ_ASSERT(c->rate > 0);
		FUZZ_ASSERT(c->burst >= 1);
		FUZZ_ASSERT(c->concurrency >= 1);
		FUZZ_ASSERT(c->max_attempts >= 1);
		FUZZ_ASSERT(c->request_timeout_ms > 0);
		FUZZ_ASSERT(c->max_upload_bytes > 0 && c->max_rows > 0);
		FUZZ_ASSERT(c->authority_url && c->graph_url && c->socket_path && c->database);
		FILE *devnull = fopen("/dev/null", "w");
		FUZZ_ASSERT(devnull);
		config_dump(c, devnull);
		fclose(devnull);
	} else {
		FUZZ_ASSERT(r < 0);
		FUZZ_ASSERT(*ret_error && strncmp(*ret_error, path, strlen(path)) == 0);
	}
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	if (fd < 0)
		fd = memfd_create("fuzz-config", MFD_CLOEXEC);
	FUZZ_ASSERT(fd >= 0);

	struct config a, b;
	char *ea, *eb;
	int ra = load(fd, data, size, &a, &ea);
	int rb = load(fd, data, size, &b, &eb);
	FUZZ_ASSERT(ra == rb);
	FUZZ_ASSERT((ea == NULL) == (eb == NULL));
	FUZZ_ASSERT(!ea || strcmp(ea, eb) == 0);
	if (ra == 0) {
		FUZZ_ASSERT(a.rate == b.rate && a.concurrency == b.concurrency);
		FUZZ_ASSERT(strcmp(a.graph_url, b.graph_url) == 0);
	}
	free(ea);
	free(eb);
	config_finish(&a);
	config_finish(&b);
	return 0;
}
