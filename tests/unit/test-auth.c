/* SPDX-License-Identifier: MIT */
/* auth_parse_reply: the token endpoint's answers (GRAPH.md §2). */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "tap.h"

int main(void)
{
	tap_plan_none();
	static const struct {
		long status;
		const char *body;
		int ok;
		const char *token;
		long long ttl;
		const char *why;
	} cases[] = {
		{200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"abc\"}", 1, "abc",
		 3599, NULL},
		{200, "{\"expires_in\":\"3599\",\"access_token\":\"abc\"}", 1, "abc", 3599, NULL},
		{200, "{\"expires_in\":\"soon\",\"access_token\":\"abc\"}", 0, NULL, 0, "no usable"},
		{200, "{\"expires_in\":0,\"access_token\":\"abc\"}", 0, NULL, 0, "no usable"},
		{200, "{\"expires_in\":3599}", 0, NULL, 0, "no usable"},
		{200, "{\"expires_in\":3599,\"access_token\":\"\"}", 0, NULL, 0, "no usable"},
		{200, "not json", 0, NULL, 0, "no usable"},
		{401,
		 "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client "
		 "secret provided.\",\"error_codes\":[7000215]}",
		 0, NULL, 0, "HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided."},
		{400, "{\"error\":\"unauthorized_client\",\"error_description\":\"AADSTS700016: app not found\"}",
		 0, NULL, 0, "AADSTS700016"},
		{503, "", 0, NULL, 0, "HTTP 503"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *token = NULL, *why = NULL;
		long long ttl = 0;
		int r = auth_parse_reply(cases[i].status, cases[i].body, strlen(cases[i].body), &token,
					 &ttl, &why);
		if (cases[i].ok) {
			is_int(r, 0, "case %zu accepted", i);
			is_str(token, cases[i].token, "case %zu token", i);
			is_int(ttl, cases[i].ttl, "case %zu lifetime", i);
		} else {
			ok(r < 0, "case %zu refused", i);
			ok(why && strstr(why, cases[i].why), "case %zu says '%s': %s", i, cases[i].why,
			   why ? why : "(null)");
		}
		free(token);
		free(why);
	}
	return tap_done();
}
