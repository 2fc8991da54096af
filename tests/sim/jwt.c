/* SPDX-License-Identifier: MIT */
#include "jwt.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JWT_MAX 16384
#define MAX_LIFETIME_S 600 /* GRAPH.md §2: exp at most 10 minutes after nbf */
#define SKEW_S 300

struct jwt_cert {
	EVP_PKEY *pub;
	char thumbprint[64]; /* base64url SHA-256 of the DER certificate */
};

static int b64url_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	if (ch == '_')
		return 63;
	return -1;
}

/* Decode n base64url characters (no padding) into out (n * 3 / 4 + 3 bytes). */
static bool b64url_decode(const char *in, size_t n, unsigned char *out, size_t *ret_len)
{
	size_t o = 0;
	unsigned acc = 0, bits = 0;
	if (n % 4 == 1)
		return false;
	for (size_t i = 0; i < n; i++) {
		int v = b64url_value(in[i]);
		if (v < 0)
			return false;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*ret_len = o;
	return true;
}

void jwt_b64url_encode(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	unsigned acc = 0, bits = 0;
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = tab[(acc >> bits) & 63];
		}
	}
	if (bits)
		out[o++] = tab[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}

int jwt_cert_load(const char *path, struct jwt_cert **ret)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x) {
		ERR_clear_error();
		return -EINVAL;
	}
	struct jwt_cert *c = calloc(1, sizeof(*c));
	unsigned char *der = NULL, md[32];
	unsigned mdlen = 0;
	int n = i2d_X509(x, &der);
	int r = -EINVAL;
	if (!c)
		r = -ENOMEM;
	else if (n > 0 && EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) == 1 &&
		 (c->pub = X509_get_pubkey(x)) != NULL) {
		jwt_b64url_encode(md, mdlen, c->thumbprint);
		*ret = c;
		c = NULL;
		r = 0;
	}
	OPENSSL_free(der);
	X509_free(x);
	jwt_cert_free(c);
	ERR_clear_error();
	return r;
}

void jwt_cert_free(struct jwt_cert *c)
{
	if (!c)
		return;
	EVP_PKEY_free(c->pub);
	free(c);
}

static json_t *decode_part(const char *p, size_t n)
{
	unsigned char buf[JWT_MAX];
	size_t len;
	if (n > JWT_MAX / 4 * 3 || !b64url_decode(p, n, buf, &len))
		return NULL;
	return json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
}

static bool verify(const struct jwt_cert *c, bool pss, const char *input, size_t input_len,
		   const unsigned char *sig, size_t sig_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	bool ok = ctx && EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, c->pub) == 1;
	if (ok && pss)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
	if (ok)
		ok = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)input, input_len) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

const char *jwt_check_assertion(const struct jwt_cert *c, const char *jwt, const char *tenant,
				const char *client_id, int64_t now_s, unsigned *ret_code)
{
	const char *why = NULL;
	json_t *header = NULL, *claims = NULL;
	unsigned char sig[1024];
	size_t sig_len = 0;
	*ret_code = 50012;

	size_t len = strlen(jwt);
	const char *dot1 = memchr(jwt, '.', len);
	const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - jwt)) : NULL;
	if (len > JWT_MAX || !dot1 || !dot2 || strchr(dot2 + 1, '.')) {
		why = "The client assertion is not a JWT (header.claims.signature).";
		goto out;
	}
	header = decode_part(jwt, (size_t)(dot1 - jwt));
	claims = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	size_t sl = strlen(dot2 + 1);
	if (!json_is_object(header) || !json_is_object(claims) || sl > sizeof(sig) / 3 * 4 ||
	    !b64url_decode(dot2 + 1, sl, sig, &sig_len)) {
		why = "The client assertion's header, claims or signature cannot be decoded.";
		goto out;
	}
	const char *alg = json_string_value(json_object_get(header, "alg"));
	const char *typ = json_string_value(json_object_get(header, "typ"));
	const char *x5t = json_string_value(json_object_get(header, "x5t#S256"));
	if (!alg || (strcmp(alg, "PS256") != 0 && strcmp(alg, "RS256") != 0) || !typ ||
	    strcmp(typ, "JWT") != 0) {
		why = "The client assertion's header must have alg PS256 (or RS256) and typ JWT.";
		goto out;
	}
	*ret_code = 700027;
	if (!x5t || strcmp(x5t, c->thumbprint) != 0) {
		why = "The certificate with identifier used to sign the client assertion is not "
		      "registered on application.";
		goto out;
	}
	if (!verify(c, strcmp(alg, "PS256") == 0, jwt, (size_t)(dot2 - jwt), sig, sig_len)) {
		why = "Client assertion failed signature validation.";
		goto out;
	}
	const char *aud = json_string_value(json_object_get(claims, "aud"));
	const char *iss = json_string_value(json_object_get(claims, "iss"));
	const char *sub = json_string_value(json_object_get(claims, "sub"));
	const char *jti = json_string_value(json_object_get(claims, "jti"));
	json_t *nbf = json_object_get(claims, "nbf"), *exp = json_object_get(claims, "exp");
	char want_aud[512];
	snprintf(want_aud, sizeof(want_aud), "/%s/oauth2/v2.0/token", tenant);
	size_t al = aud ? strlen(aud) : 0, wl = strlen(want_aud);
	if (!aud || al <= wl || strcmp(aud + al - wl, want_aud) != 0 ||
	    (strncmp(aud, "https://", 8) != 0 && strncmp(aud, "http://", 7) != 0)) {
		*ret_code = 700212;
		why = "The client assertion's audience (aud) is not this token endpoint.";
		goto out;
	}
	if (!iss || !sub || strcmp(iss, client_id) != 0 || strcmp(sub, client_id) != 0) {
		*ret_code = 700021;
		why = "Client assertion application identifier doesn't match 'client_id' parameter.";
		goto out;
	}
	if (!jti || !*jti) {
		*ret_code = 700023;
		why = "The client assertion has no jti.";
		goto out;
	}
	if (!json_is_integer(nbf) || !json_is_integer(exp) ||
	    json_integer_value(nbf) > now_s + SKEW_S || json_integer_value(exp) <= now_s ||
	    json_integer_value(exp) - json_integer_value(nbf) > MAX_LIFETIME_S) {
		*ret_code = 700024;
		why = "Client assertion is not within its valid time range.";
		goto out;
	}
	*ret_code = 0;
out:
	json_decref(header);
	json_decref(claims);
	return why;
}
