/* SPDX-License-Identifier: MIT */
/*
 * jwt: the simulator's check of a client assertion (GRAPH.md §2) against
 * the certificate given with --client-cert, as Entra ID checks it against
 * the certificate registered on the application. Written apart from the
 * daemon's crypto.c so that the two check each other. No logging.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct jwt_cert;

/* A PEM file with a certificate (a key in it is ignored). 0 or negative errno. */
int jwt_cert_load(const char *path, struct jwt_cert **ret);
void jwt_cert_free(struct jwt_cert *c);

/*
 * NULL when jwt (borrowed) is a valid assertion for client_id at a token
 * URL of tenant at now_s; else a static sentence saying why not, and
 * *ret_code the AADSTS code Entra ID would give.
 */
const char *jwt_check_assertion(const struct jwt_cert *c, const char *jwt, const char *tenant,
				const char *client_id, int64_t now_s, unsigned *ret_code);

/* n bytes as base64url without padding into out (at least n * 4 / 3 + 2
 * bytes, NUL-terminated); the issued access tokens are made with it. */
void jwt_b64url_encode(const unsigned char *in, size_t n, char *out);
