/* SPDX-License-Identifier: MIT */
#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "secret.h"

#define MAX_PEM_BYTES (256u * 1024u)
#define ASSERTION_LIFETIME_S 600

struct crypto_sha256 {
	EVP_MD_CTX *ctx;
};

int crypto_sha256_create(struct crypto_sha256 **ret)
{
	struct crypto_sha256 *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		crypto_sha256_destroy(h);
		return -ENOMEM;
	}
	*ret = h;
	return 0;
}

int crypto_sha256_update(struct crypto_sha256 *h, const void *data, size_t len)
{
	return EVP_DigestUpdate(h->ctx, data, len) == 1 ? 0 : -EINVAL;
}

int crypto_sha256_finish(struct crypto_sha256 *h, char out[CRYPTO_SHA256_HEX])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n != 32)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * n] = '\0';
	return 0;
}

void crypto_sha256_destroy(struct crypto_sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

char *crypto_base64url_decode(const char *text, size_t len, size_t *ret_len)
{
	while (len > 0 && text[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return NULL;
	char *out = malloc(len / 4 * 3 + 4);
	if (!out)
		return NULL;
	size_t o = 0;
	unsigned v = 0, bits = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		unsigned d;
		if (c >= 'A' && c <= 'Z')
			d = c - 'A';
		else if (c >= 'a' && c <= 'z')
			d = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			d = c - '0' + 52;
		else if (c == '-')
			d = 62;
		else if (c == '_')
			d = 63;
		else {
			free(out);
			return NULL;
		}
		v = v << 6 | d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)(v >> bits & 0xff);
		}
	}
	out[o] = '\0';
	if (ret_len)
		*ret_len = o;
	return out;
}

char *crypto_base64url(const void *data, size_t len)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *p = data;
	char *out = malloc(len / 3 * 4 + 5);
	if (!out)
		return NULL;
	size_t o = 0, i = 0;
	for (; i + 3 <= len; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
		out[o++] = tab[v & 63];
	}
	if (len - i == 1) {
		unsigned v = (unsigned)p[i] << 16;
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
	} else if (len - i == 2) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
	}
	out[o] = '\0';
	return out;
}

struct crypto_cert {
	EVP_PKEY *key;
	char *thumbprint;
	char *subject;
	int64_t not_after;
};

static char *ssl_error(const char *what)
{
	struct buf m = BUF_INIT;
	unsigned long e = ERR_peek_last_error();
	char text[256] = "";
	if (e)
		ERR_error_string_n(e, text, sizeof(text));
	ERR_clear_error();
	buf_printf(&m, "%s%s%s", what, e ? ": " : "", text);
	return buf_steal(&m);
}

int crypto_cert_load_pem(const char *pem, size_t len, const char *name, struct crypto_cert **ret,
			 char **ret_error)
{
	struct buf err = BUF_INIT;
	int r = -EINVAL;
	X509 *x = NULL;
	unsigned char *der = NULL;
	struct crypto_cert *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		r = -ENOMEM;
		goto out;
	}
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (!x) {
		char *why = ssl_error("no PEM certificate");
		buf_printf(&err, "certificate_file '%s': %s", name, why);
		free(why);
		goto out;
	}
	BIO_free(bio);
	bio = BIO_new_mem_buf(pem, (int)len); /* the key may come before the certificate */
	if (!bio) {
		r = -ENOMEM;
		goto out;
	}
	c->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
	if (!c->key) {
		char *why = ssl_error("no unencrypted PEM private key");
		buf_printf(&err, "certificate_file '%s': %s (the file must hold the certificate "
				 "and its key)",
			   name, why);
		free(why);
		goto out;
	}
	ERR_clear_error();
	if (EVP_PKEY_get_base_id(c->key) != EVP_PKEY_RSA) {
		buf_printf(&err, "certificate_file '%s': the key is not RSA (Entra ID signs "
				 "assertions with PS256)",
			   name);
		goto out;
	}
	if (X509_check_private_key(x, c->key) != 1) {
		ERR_clear_error();
		buf_printf(&err, "certificate_file '%s': the private key does not belong to the "
				 "certificate",
			   name);
		goto out;
	}
	int n = i2d_X509(x, &der);
	unsigned char md[32];
	unsigned mdlen = 0;
	if (n <= 0 || EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1) {
		buf_printf(&err, "certificate_file '%s': cannot encode the certificate", name);
		goto out;
	}
	c->thumbprint = crypto_base64url(md, mdlen);
	char *subject = X509_NAME_oneline(X509_get_subject_name(x), NULL, 0);
	c->subject = subject ? strdup(subject) : strdup("?");
	OPENSSL_free(subject);
	struct tm tm;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		c->not_after = (int64_t)timegm(&tm);
	if (!c->thumbprint || !c->subject) {
		r = -ENOMEM;
		goto out;
	}
	*ret = c;
	c = NULL;
	r = 0;
out:
	OPENSSL_free(der);
	X509_free(x);
	BIO_free(bio);
	crypto_cert_destroy(c);
	if (r < 0 && ret_error)
		*ret_error = err.data ? buf_steal(&err) : strdup("out of memory");
	buf_finish(&err);
	return r;
}

int crypto_cert_load(const char *path, struct crypto_cert **ret, char **ret_error)
{
	struct buf err = BUF_INIT;
	int r = 0;
	char *pem = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		buf_printf(&err, "cannot read certificate_file '%s': %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > MAX_PEM_BYTES) {
		r = -EINVAL;
		buf_printf(&err, "certificate_file '%s' is not a PEM file of at most %u bytes", path,
			   MAX_PEM_BYTES);
		goto out;
	}
	if (st.st_mode & 077) {
		r = -EPERM;
		buf_printf(&err,
			   "certificate_file '%s' holds a private key and is accessible by group or "
			   "others (mode %04o): make it readable by its owner only (chmod 0600)",
			   path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	pem = secret_alloc((size_t)st.st_size);
	if (!pem) {
		r = -ENOMEM;
		goto out;
	}
	size_t len = 0;
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, pem + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			buf_printf(&err, "cannot read certificate_file '%s': %s", path,
				   n < 0 ? strerror(errno) : "short read");
			goto out;
		}
		len += (size_t)n;
	}
	char *why = NULL;
	r = crypto_cert_load_pem(pem, len, path, ret, &why);
	if (r < 0) {
		buf_append_str(&err, why ? why : "out of memory");
		free(why);
	}
out:
	if (fd >= 0)
		close(fd);
	secret_free(pem);
	if (r < 0 && ret_error)
		*ret_error = err.data ? buf_steal(&err) : strdup("out of memory");
	buf_finish(&err);
	return r;
}

void crypto_cert_destroy(struct crypto_cert *c)
{
	if (!c)
		return;
	EVP_PKEY_free(c->key);
	free(c->thumbprint);
	free(c->subject);
	free(c);
}

const char *crypto_cert_thumbprint(const struct crypto_cert *c)
{
	return c->thumbprint;
}

const char *crypto_cert_subject(const struct crypto_cert *c)
{
	return c->subject;
}

int64_t crypto_cert_not_after(const struct crypto_cert *c)
{
	return c->not_after;
}

static char *b64_json(json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		return NULL;
	char *b = crypto_base64url(text, strlen(text));
	free(text);
	return b;
}

int crypto_cert_assertion(const struct crypto_cert *c, const char *token_url,
			  const char *client_id, int64_t now_s, char **ret_jwt)
{
	int r = -ENOMEM;
	unsigned char id[16];
	char guid[37];
	char *header = NULL, *claims = NULL, *sig64 = NULL, *jwt = NULL;
	unsigned char *sig = NULL;
	struct buf input = BUF_INIT;
	EVP_MD_CTX *ctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;

	if (RAND_bytes(id, sizeof(id)) != 1) {
		r = -EIO;
		goto out;
	}
	id[6] = (unsigned char)((id[6] & 0x0f) | 0x40); /* version 4 */
	id[8] = (unsigned char)((id[8] & 0x3f) | 0x80);
	snprintf(guid, sizeof(guid),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", id[0],
		 id[1], id[2], id[3], id[4], id[5], id[6], id[7], id[8], id[9], id[10], id[11], id[12],
		 id[13], id[14], id[15]);
	header = b64_json(json_pack("{s:s,s:s,s:s}", "alg", "PS256", "typ", "JWT", "x5t#S256",
				    c->thumbprint));
	claims = b64_json(json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "aud", token_url, "iss",
				    client_id, "sub", client_id, "jti", guid, "nbf",
				    (json_int_t)now_s, "iat", (json_int_t)now_s, "exp",
				    (json_int_t)(now_s + ASSERTION_LIFETIME_S)));
	if (!header || !claims || buf_printf(&input, "%s.%s", header, claims) < 0)
		goto out;

	size_t siglen = 0;
	ctx = EVP_MD_CTX_new();
	r = -EINVAL;
	if (!ctx || EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, c->key) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
	    EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)input.data, input.len) != 1)
		goto out;
	sig = malloc(siglen);
	if (!sig ||
	    EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input.data, input.len) != 1)
		goto out;
	sig64 = crypto_base64url(sig, siglen);
	if (!sig64)
		goto out;
	jwt = secret_alloc(input.len + 1 + strlen(sig64));
	if (!jwt) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(jwt, input.data, input.len);
	jwt[input.len] = '.';
	memcpy(jwt + input.len + 1, sig64, strlen(sig64));
	*ret_jwt = jwt;
	r = 0;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	free(header);
	free(claims);
	free(sig);
	free(sig64);
	buf_finish(&input);
	return r;
}
