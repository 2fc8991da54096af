/* SPDX-License-Identifier: MIT */
/*
 * crypto: the only user of OpenSSL's libcrypto. SHA-256 of uploads (for the
 * audit) and the certificate credential: a client assertion JWT signed
 * PS256 (GRAPH.md §2), sent instead of a client secret.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA256_HEX 65 /* 64 hex digits and a NUL */

/* Streaming SHA-256. */
struct crypto_sha256;
int crypto_sha256_create(struct crypto_sha256 **ret);
int crypto_sha256_update(struct crypto_sha256 *h, const void *data, size_t len);
/* Lowercase hex into out; the hash cannot be updated after. */
int crypto_sha256_finish(struct crypto_sha256 *h, char out[CRYPTO_SHA256_HEX]);
void crypto_sha256_destroy(struct crypto_sha256 *h);

/* A certificate and its RSA private key. */
struct crypto_cert;

/*
 * Read a PEM file holding the certificate and its private key (either
 * order). The key must be RSA and must match the certificate. On failure
 * returns a negative errno with *ret_error (owned) saying why.
 */
int crypto_cert_load(const char *path, struct crypto_cert **ret, char **ret_error);
/* The same from PEM text in memory (borrowed). name: for messages. */
int crypto_cert_load_pem(const char *pem, size_t len, const char *name, struct crypto_cert **ret,
			 char **ret_error);
void crypto_cert_destroy(struct crypto_cert *c);
/* base64url SHA-256 of the DER certificate (the JWT's x5t#S256), borrowed. */
const char *crypto_cert_thumbprint(const struct crypto_cert *c);
/* The certificate's subject, one line (borrowed), and its expiry (s since epoch). */
const char *crypto_cert_subject(const struct crypto_cert *c);
int64_t crypto_cert_not_after(const struct crypto_cert *c);

/*
 * A client assertion: header {alg PS256, typ JWT, x5t#S256}, claims aud =
 * token_url, iss = sub = client_id, jti a random GUID, nbf = iat = now_s,
 * exp = now_s + 600. *ret_jwt is in secret memory (free with secret_free).
 */
int crypto_cert_assertion(const struct crypto_cert *c, const char *token_url,
			  const char *client_id, int64_t now_s, char **ret_jwt);

/* base64url without padding of len bytes (returned, owned; malloc). */
char *crypto_base64url(const void *data, size_t len);
/* The bytes of base64url text (padding optional), NUL-terminated, owned
 * (malloc), length in *ret_len; NULL when it is not base64url or out of
 * memory. Pure. */
char *crypto_base64url_decode(const char *text, size_t len, size_t *ret_len);
