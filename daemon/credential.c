/* SPDX-License-Identifier: MIT */
#include "credential.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "log.h"
#include "secret.h"
#include "timeutil.h"

#define MAX_SECRET_BYTES 16384

void credential_finish(struct credential *c)
{
	secret_free(c->smtp_password);
	free(c->smtp_source);
	secret_free(c->secret);
	crypto_cert_destroy(c->cert);
	free(c->source);
	memset(c, 0, sizeof(*c));
}

/* A secret file: readable by its owner only, at most MAX_SECRET_BYTES. */
int credential_read_secret(const char *path, char **ret, char **ret_error)
{
	struct buf err = BUF_INIT;
	int r = 0;
	char *data = NULL;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		buf_printf(&err, "cannot read the client secret '%s': %s", path, strerror(errno));
		goto out;
	}
	if (st.st_mode & 077) {
		r = -EPERM;
		buf_printf(&err,
			   "refusing the client secret '%s': it is accessible by group or others "
			   "(mode %04o); make it readable by its owner only (chmod 0600), or pass it "
			   "with systemd's LoadCredential=",
			   path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	data = secret_alloc(MAX_SECRET_BYTES);
	if (!data) {
		r = -ENOMEM;
		goto out;
	}
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, data + len, MAX_SECRET_BYTES - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			buf_printf(&err, "cannot read the client secret '%s': %s", path,
				   strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == MAX_SECRET_BYTES) {
			r = -EFBIG;
			buf_printf(&err, "the client secret '%s' is larger than %u bytes", path,
				   MAX_SECRET_BYTES - 1);
			goto out;
		}
	}
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
		data[--len] = '\0';
	if (len == 0) {
		r = -EINVAL;
		buf_printf(&err, "the client secret '%s' is empty", path);
		goto out;
	}
	*ret = data;
	data = NULL;
out:
	if (fd >= 0)
		close(fd);
	secret_free(data);
	if (r < 0)
		*ret_error = err.data ? buf_steal(&err) : strdup("out of memory");
	buf_finish(&err);
	return r;
}

/* "DIR/PREFIXclient-secret" or "...client-certificate", whichever exists:
 * 1 and *path set, 0 when neither does. */
static int from_creds_dir(const char *creds_dir, const char *prefix, struct buf *path, bool *cert)
{
	if (!creds_dir)
		return 0;
	buf_clear(path);
	if (buf_printf(path, "%s/%sclient-secret", creds_dir, prefix) < 0)
		return -ENOMEM;
	if (access(path->data, F_OK) == 0) {
		*cert = false;
		return 1;
	}
	buf_clear(path);
	if (buf_printf(path, "%s/%sclient-certificate", creds_dir, prefix) < 0)
		return -ENOMEM;
	if (access(path->data, F_OK) == 0) {
		*cert = true;
		return 1;
	}
	return 0;
}

/* The SMTP relay's password of tenant t ([mail] via = smtp, smtp_user set). */
static int load_smtp_password(const struct config_tenant *t, const char *creds_dir,
			      struct credential *ret, char **ret_error)
{
	const struct config_mail *m = &t->mail;
	if (!m->on || m->via != CONFIG_MAIL_SMTP || !m->smtp_user)
		return 0;
	struct buf path = BUF_INIT;
	int r = 0;
	if (m->smtp_password_file) {
		buf_append_str(&path, m->smtp_password_file);
	} else {
		const char *names[2] = {t->name, NULL};
		for (size_t i = 0; i < 2 && creds_dir && !path.data; i++) {
			struct buf p = BUF_INIT;
			buf_printf(&p, "%s/%s%ssmtp-password", creds_dir, names[i] ? names[i] : "",
				   names[i] ? "." : "");
			if (p.data && access(p.data, F_OK) == 0)
				path = p;
			else
				buf_finish(&p);
		}
	}
	if (!path.data) {
		struct buf e = BUF_INIT;
		buf_printf(&e, "[mail] of tenant '%s': smtp_user is set but no password: set "
			       "smtp_password_file, or pass the systemd credential \"%s.smtp-password\" "
			       "or \"smtp-password\"",
			   t->name, t->name);
		*ret_error = e.data ? buf_steal(&e) : strdup("out of memory");
		return -ENOENT;
	}
	r = credential_read_secret(path.data, &ret->smtp_password, ret_error);
	if (r == 0) {
		/* one line: a trailing newline is not part of it */
		size_t n = strlen(ret->smtp_password);
		while (n > 0 && (ret->smtp_password[n - 1] == '\n' || ret->smtp_password[n - 1] == '\r'))
			ret->smtp_password[--n] = '\0';
		ret->smtp_source = buf_steal(&path);
	}
	buf_finish(&path);
	return r;
}

int credential_load(const struct config *c, const struct config_tenant *t, const char *creds_dir,
		    struct credential *ret, char **ret_error)
{
	struct buf path = BUF_INIT, prefix = BUF_INIT;
	bool cert = false, wave1 = !c->have_tenant_sections;
	char *error = NULL;
	int r = 0;
	memset(ret, 0, sizeof(*ret));
	if (buf_printf(&prefix, "%s.", t->name) < 0) {
		r = -ENOMEM;
		goto out;
	}
	if (t->certificate_file || t->client_secret_file) {
		cert = t->certificate_file != NULL;
		buf_append_str(&path, cert ? t->certificate_file : t->client_secret_file);
	} else if ((r = from_creds_dir(creds_dir, prefix.data, &path, &cert)) != 0) {
		if (r < 0)
			goto out;
	} else if (c->certificate_file || c->client_secret_file) {
		cert = c->certificate_file != NULL;
		buf_clear(&path);
		buf_append_str(&path, cert ? c->certificate_file : c->client_secret_file);
	} else if ((r = from_creds_dir(creds_dir, "", &path, &cert)) != 0) {
		if (r < 0)
			goto out;
	} else {
		struct buf m = BUF_INIT;
		if (wave1 && !creds_dir)
			buf_append_str(&m, "no credential: set client_secret_file or certificate_file in "
					   "[graph], or pass the credential \"client-secret\" (systemd "
					   "LoadCredential=)");
		else if (wave1)
			buf_append_str(&m, "no credential: $CREDENTIALS_DIRECTORY has neither "
					   "\"client-secret\" nor \"client-certificate\"");
		else
			buf_printf(&m,
				   "%s:%u: [tenant %s] has no credential: set client_secret_file or "
				   "certificate_file in it or in [graph], or pass the systemd "
				   "credential \"%s.client-secret\" or \"%s.client-certificate\"",
				   t->file, t->line, t->name, t->name, t->name);
		error = m.data ? buf_steal(&m) : strdup("out of memory");
		r = -ENOENT;
		goto out;
	}
	if (!path.data) {
		r = -ENOMEM;
		goto out;
	}
	if (cert)
		r = crypto_cert_load(path.data, &ret->cert, &error);
	else
		r = credential_read_secret(path.data, &ret->secret, &error);
	if (r == 0)
		ret->source = buf_steal(&path);
	else if (!wave1 && error) {
		/* name the tenant: one file among many */
		struct buf m = BUF_INIT;
		buf_printf(&m, "[tenant %s]: %s", t->name, error);
		if (m.data) {
			free(error);
			error = buf_steal(&m);
		}
	}
out:
	buf_finish(&path);
	buf_finish(&prefix);
	if (r == 0) {
		free(error);
		error = NULL;
		r = load_smtp_password(t, creds_dir, ret, &error);
		if (r < 0)
			credential_finish(ret);
	}
	if (r < 0)
		*ret_error = error ? error : strdup(strerror(-r));
	else
		free(error);
	return r;
}

void credential_dump(const struct credential *cr, const char *tenant, FILE *f)
{
	if (cr->cert) {
		char t[TIME_RFC3339_MAX];
		time_format_rfc3339((uint64_t)crypto_cert_not_after(cr->cert) * 1000u, t);
		fprintf(f, "\n# credential of tenant '%s': certificate from '%s'\n#   subject %s\n"
			   "#   x5t#S256 %s\n#   not after %s\n",
			tenant, cr->source, crypto_cert_subject(cr->cert),
			crypto_cert_thumbprint(cr->cert), t);
	} else {
		fprintf(f, "\n# credential of tenant '%s': client secret from '%s': ******** (%zu "
			   "characters, not shown)\n",
			tenant, cr->source, strlen(cr->secret));
	}
	if (cr->smtp_password)
		fprintf(f, "# SMTP password of tenant '%s' from '%s': ******** (not shown)\n", tenant,
			cr->smtp_source);
}

void credential_log(const struct credential *cr, const char *tenant)
{
	if (!cr->cert)
		return;
	int64_t left_s = crypto_cert_not_after(cr->cert) - (int64_t)(time_now_ms() / 1000u);
	log_info("Signing in with the certificate %s (x5t#S256 %s) from '%s' (tenant %s)",
		 crypto_cert_subject(cr->cert), crypto_cert_thumbprint(cr->cert), cr->source, tenant);
	if (left_s <= 0)
		log_error("The certificate %s has expired: Entra ID will refuse it; upload "
			  "a new one to the app registration and install it here",
			  crypto_cert_subject(cr->cert));
	else if (left_s < 30 * 86400)
		log_warning("The certificate %s expires in %lld day%s: renew it",
			    crypto_cert_subject(cr->cert), (long long)(left_s / 86400),
			    left_s / 86400 == 1 ? "" : "s");
}
