/* SPDX-License-Identifier: MIT */
/*
 * fuzz-auth: the token endpoint's answer (auth_parse_reply).
 *
 * Input: bytes 0-1 pick the HTTP status, the rest is the body. A token is
 * accepted only from a 200 with a non-empty access_token and a lifetime of
 * 1 s to a year; anything else is refused with a reason, and never both.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	static const long common[] = {200, 400, 401, 403, 429, 500, 503, 0};
	unsigned sel = (unsigned)data[0] << 8 | data[1];
	long status = sel < 0x8000 ? common[sel % 8] : (long)(sel % 600);

	char *token = NULL, *why = NULL;
	long long ttl = -1;
	int r = auth_parse_reply(status, (const char *)data + 2, size - 2, &token, &ttl, &why);
	if (r == 0) {
		FUZZ_ASSERT(status == 200);
		FUZZ_ASSERT(token && *token);
		FUZZ_ASSERT(ttl > 0 && ttl <= 86400LL * 366);
		FUZZ_ASSERT(why == NULL);
		free(token);
	} else {
		FUZZ_ASSERT(r == -EINVAL || r == -ENOMEM);
		FUZZ_ASSERT(token == NULL);
		FUZZ_ASSERT(why && *why);
		free(why);
	}
	return 0;
}
