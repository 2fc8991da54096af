/* SPDX-License-Identifier: MIT */
/* secret: memory left out of core dumps and wiped in forked children;
 * crypto: SHA-256, base64url and certificate loading errors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto.h"
#include "secret.h"
#include "tap.h"

/* The VmFlags line of the mapping holding addr in /proc/self/smaps. */
static int vm_flags(const void *addr, char *out, size_t size)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	if (!f)
		return -1;
	char line[512];
	int in = 0, found = -1;
	uintptr_t a = (uintptr_t)addr;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = a >= lo && a < hi;
		else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			size_t n = strlen(line + 8);
			if (n >= size)
				n = size - 1;
			memcpy(out, line + 8, n);
			while (n > 0 && (line[8 + n - 1] == '\n' || line[8 + n - 1] == ' '))
				n--;
			out[n] = '\0';
			found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

static void test_secret(void)
{
	char *s = secret_strdup("s3cr3t-value");
	ok(s && strcmp(s, "s3cr3t-value") == 0, "secret_strdup copies");
	char flags[256] = "";
	ok(vm_flags(s, flags, sizeof(flags)) == 0, "its mapping is in smaps");
	ok(strstr(flags, " dd") != NULL, "marked MADV_DONTDUMP (dd):%s", flags);
	if (strstr(flags, " wf")) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(s[0] == '\0' && s[5] == '\0' ? 0 : 1);
		int status = 0;
		waitpid(pid, &status, 0);
		ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		   "a forked child sees zeros (MADV_WIPEONFORK)");
	} else {
		ok(1, "# SKIP the kernel has no MADV_WIPEONFORK");
	}
	ok((uintptr_t)(s - 16) % (uintptr_t)sysconf(_SC_PAGESIZE) == 0,
	   "the allocation starts its own page");
	secret_free(s);
	secret_free(NULL);
	char *big = secret_alloc(100000);
	ok(big && big[99999] == '\0' && big[100000] == '\0', "large allocations are zeroed");
	secret_free(big);
}

static void test_crypto(void)
{
	struct crypto_sha256 *h = NULL;
	char hex[CRYPTO_SHA256_HEX];
	ok(crypto_sha256_create(&h) == 0, "sha256 create");
	crypto_sha256_update(h, "a", 1);
	crypto_sha256_update(h, "bc", 2);
	ok(crypto_sha256_finish(h, hex) == 0, "sha256 finish");
	is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "SHA-256 of \"abc\" fed in two parts");
	crypto_sha256_destroy(h);

	static const struct {
		const char *in, *out;
	} b64[] = {{"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"},
		   {"\xfb\xff", "-_8"}};
	for (size_t i = 0; i < sizeof(b64) / sizeof(b64[0]); i++) {
		char *o = crypto_base64url(b64[i].in, strlen(b64[i].in));
		is_str(o, b64[i].out, "base64url vector %zu", i);
		free(o);
		size_t len = 99;
		char *d = crypto_base64url_decode(b64[i].out, strlen(b64[i].out), &len);
		ok(d && len == strlen(b64[i].in) && memcmp(d, b64[i].in, len) == 0,
		   "base64url decodes vector %zu back", i);
		free(d);
	}
	size_t dl;
	char *dd = crypto_base64url_decode("Zm9vYg==", 8, &dl);
	is_str(dd, "foob", "padding is allowed");
	free(dd);
	ok(!crypto_base64url_decode("Zm9v+g", 6, &dl) && !crypto_base64url_decode("Z", 1, &dl),
	   "'+' (base64, not base64url) and a lone character are refused");

	struct crypto_cert *c = NULL;
	char *err = NULL;
	static const char junk[] = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n";
	int r = crypto_cert_load_pem(junk, sizeof(junk) - 1, "/x.pem", &c, &err);
	ok(r < 0 && err && strstr(err, "certificate_file '/x.pem'"),
	   "a broken PEM is refused, naming the file (%s)", err ? err : "");
	free(err);
	err = NULL;
	r = crypto_cert_load("/nonexistent/cert.pem", &c, &err);
	ok(r < 0 && err && strstr(err, "cannot read certificate_file"),
	   "a missing file is refused (%s)", err ? err : "");
	free(err);
}

int main(void)
{
	tap_plan_none();
	test_secret();
	test_crypto();
	return tap_done();
}
