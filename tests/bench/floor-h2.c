/* SPDX-License-Identifier: MIT */
/*
 * floor-h2: floor.c's question for P10's transport: the least a client
 * spends per single-request invitation over h2 on TLS on this machine.
 * One TCP connection, OpenSSL (ALPN h2, the certificate verified against
 * CAFILE) and nghttp2's client session; POSTs started from a timerfd (as the
 * daemon's rate limiter starts them), at most STREAMS in flight. Each loop
 * iteration hands everything nghttp2 has pending to ONE SSL_write; a readable
 * socket is read until WANT_READ. No database, no allocation per request.
 * With --tick-ms N a tick starts RATE*N/1000 requests, so that one write
 * carries several: what coalescing would save. CPU (getrusage) and counters
 * are taken over the middle 80 % of the run (10 % warm-up, 10 % tail).
 *
 *   floor-h2 PORT TOKEN RATE SECONDS CAFILE [--tick-ms N] [--host NAME]
 *                                       prints one JSON line
 * NAME (default 127.0.0.1): the name or address the certificate must match
 * and the :authority; the connection goes to 127.0.0.1:PORT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define STREAMS 32
#define GRACE_S 5
#define SOCK_ID 1u
#define TIMER_ID 2u
#define WBUF_CAP (256 * 1024)
#define WBUF_ROOM (32 * 1024) /* mem_send is called only with this much free */

struct slot {
	int busy;
	int status;
	size_t blen, boff;
	char body[256];
	char clen[16];
};

/* What the measured window reads; snapshots of it are subtracted. */
struct counts {
	double user_us, sys_us;
	long done, ok, writes, reads, ssl_writes, epoll_waits, skipped;
};

static struct slot slots[STREAMS];
static struct counts now_c;
static int inflight;

static void cpu(struct counts *c)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	c->user_us = ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec;
	c->sys_us = ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int num(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

static void die_ssl(const char *what)
{
	fprintf(stderr, "floor-h2: %s failed: ", what);
	ERR_print_errors_fp(stderr);
	fputc('\n', stderr);
	exit(69);
}

/* Counts the socket BIO's reads and writes: each is one system call. */
static long bio_count(BIO *b, int oper, const char *argp, size_t len, int argi, long argl, int ret,
                      size_t *processed)
{
	(void)b, (void)argp, (void)len, (void)argi, (void)argl, (void)processed;
	if (oper == (BIO_CB_READ | BIO_CB_RETURN))
		now_c.reads++;
	else if (oper == (BIO_CB_WRITE | BIO_CB_RETURN))
		now_c.writes++;
	return ret;
}

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
	(void)s, (void)id, (void)ud;
	struct slot *sl = src->ptr;
	size_t n = sl->blen - sl->boff < len ? sl->blen - sl->boff : len;
	memcpy(buf, sl->body + sl->boff, n);
	sl->boff += n;
	if (sl->boff == sl->blen)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	(void)flags, (void)ud;
	struct slot *sl = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (sl && f->hd.type == NGHTTP2_HEADERS && nl == 7 && !memcmp(name, ":status", 7) &&
	    vl == 3)
		sl->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
	return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
	(void)err, (void)ud;
	struct slot *sl = nghttp2_session_get_stream_user_data(s, id);
	if (!sl)
		return 0;
	now_c.done++;
	now_c.ok += sl->status == 201;
	sl->busy = 0;
	inflight--;
	return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	(void)s, (void)ud;
	if (f->hd.type == NGHTTP2_GOAWAY) {
		fprintf(stderr, "floor-h2: the server sent GOAWAY (error %u)\n",
		        f->goaway.error_code);
		exit(69);
	}
	return 0;
}

#define NV(n, v, vl)                                                                               \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl),                               \
		    NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                   \
	}

/* One POST on a free slot; -EAGAIN when all STREAMS are in flight. The
 * header values point into the slot, argv and authority (NO_COPY): all live
 * until the stream closes. */
static int start(nghttp2_session *s, const char *authority, const char *bearer, long seq)
{
	unsigned i = 0;
	while (i < STREAMS && slots[i].busy)
		i++;
	if (i == STREAMS)
		return -EAGAIN;
	struct slot *sl = &slots[i];
	int bl = snprintf(sl->body, sizeof(sl->body),
	                  "{\"invitedUserEmailAddress\":\"floor%ld@tenant-%ld.example\","
	                  "\"inviteRedirectUrl\":\"https://myapplications.microsoft.com\","
	                  "\"sendInvitationMessage\":false}",
	                  seq, seq % 17);
	int cl = snprintf(sl->clen, sizeof(sl->clen), "%d", bl);
	if (bl <= 0 || bl >= (int)sizeof(sl->body) || cl <= 0)
		return -EOVERFLOW;
	sl->blen = (size_t)bl;
	sl->boff = 0;
	sl->status = 0;
	nghttp2_nv nva[] = {
	    NV(":method", "POST", 4),
	    NV(":scheme", "https", 5),
	    NV(":authority", authority, strlen(authority)),
	    NV(":path", "/v1.0/invitations", 17),
	    NV("authorization", bearer, strlen(bearer)),
	    NV("content-type", "application/json", 16),
	    NV("accept", "application/json", 16),
	    NV("content-length", sl->clen, (size_t)cl),
	};
	nghttp2_data_provider dp = {.source.ptr = sl, .read_callback = body_read};
	if (nghttp2_submit_request(s, NULL, nva, sizeof(nva) / sizeof(nva[0]), &dp, sl) < 0)
		return -EPROTO;
	sl->busy = 1;
	inflight++;
	return 0;
}

/* TCP to 127.0.0.1:port and a TLS handshake that must verify host and pick
 * h2; blocking with 5 s time-outs, non-blocking afterwards. Exits on failure. */
static SSL *tls_connect(int *ret_fd, int port, const char *host, const char *cafile)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {5, 0};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("floor-h2: connect");
		exit(69);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1 ||
	    SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3) != 0)
		die_ssl("the TLS context (CA file)");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_read_ahead(ctx, 1); /* a record in one read(), not header then body */
	SSL *ssl = SSL_new(ctx);
	BIO *bio = BIO_new_socket(fd, BIO_NOCLOSE);
	struct in_addr ip;
	if (!ssl || !bio)
		die_ssl("SSL_new");
	if (inet_pton(AF_INET, host, &ip) == 1 || strchr(host, ':')) {
		if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host))
			die_ssl("the address to verify");
	} else if (!SSL_set1_host(ssl, host) || !SSL_set_tlsext_host_name(ssl, host)) {
		die_ssl("the host name to verify");
	}
	BIO_set_callback_ex(bio, bio_count);
	SSL_set_bio(ssl, bio, bio);
	SSL_CTX_free(ctx); /* the SSL holds a reference */
	if (SSL_connect(ssl) != 1)
		die_ssl("the TLS handshake (certificate, name or server)");
	const unsigned char *alpn;
	unsigned alen;
	SSL_get0_alpn_selected(ssl, &alpn, &alen);
	if (alen != 2 || memcmp(alpn, "h2", 2)) {
		fprintf(stderr, "floor-h2: the server did not select h2 by ALPN (got \"%.*s\")\n",
		        (int)alen, alen ? (const char *)alpn : "");
		exit(69);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	*ret_fd = fd;
	return ssl;
}

/* Everything nghttp2 has pending, in ONE SSL_write (one record per 16 KiB);
 * kept and retried when the socket is full. Returns 1 while data waits. */
static int flush(SSL *ssl, nghttp2_session *s)
{
	static uint8_t wbuf[WBUF_CAP];
	static size_t wlen;
	static int stuck; /* SSL_write wants the same bytes again */
	while (!stuck && wlen <= WBUF_CAP - WBUF_ROOM) {
		const uint8_t *p;
		ssize_t n = nghttp2_session_mem_send(s, &p);
		if (n < 0 || (size_t)n > WBUF_CAP - wlen) {
			fprintf(stderr, "floor-h2: nghttp2_session_mem_send: %zd\n", n);
			exit(70);
		}
		if (n == 0)
			break;
		memcpy(wbuf + wlen, p, (size_t)n);
		wlen += (size_t)n;
	}
	if (!wlen)
		return 0;
	now_c.ssl_writes++;
	int r = SSL_write(ssl, wbuf, (int)wlen);
	if (r > 0) {
		wlen = 0;
		stuck = 0;
		return 0;
	}
	int e = SSL_get_error(ssl, r);
	if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
		die_ssl("SSL_write");
	stuck = 1;
	return 1;
}

/* SSL_read until WANT_READ (at most 1024 records), each fed to nghttp2. */
static void drain(SSL *ssl, nghttp2_session *s)
{
	static uint8_t rbuf[16384];
	for (int k = 0; k < 1024; k++) {
		int n = SSL_read(ssl, rbuf, sizeof(rbuf));
		if (n <= 0) {
			int e = SSL_get_error(ssl, n);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return;
			fprintf(stderr, "floor-h2: the server closed the connection\n");
			exit(69);
		}
		ssize_t m = nghttp2_session_mem_recv(s, rbuf, (size_t)n);
		if (m < 0) {
			fprintf(stderr, "floor-h2: nghttp2: %s\n", nghttp2_strerror((int)m));
			exit(69);
		}
	}
}

int main(int argc, char **argv)
{
	long port, rate, secs, tick_ms = 1;
	const char *host = "127.0.0.1";
	int bad = argc < 6 || num(argv[1], 1, 65535, &port) || num(argv[3], 1, 100000, &rate) ||
	          num(argv[4], 1, 600, &secs);
	for (int i = 6; !bad && i < argc; i += 2) {
		if (i + 1 < argc && !strcmp(argv[i], "--tick-ms"))
			bad = num(argv[i + 1], 1, 1000, &tick_ms);
		else if (i + 1 < argc && !strcmp(argv[i], "--host"))
			host = argv[i + 1];
		else
			bad = 1;
	}
	if (bad) {
		fprintf(stderr, "usage: floor-h2 PORT TOKEN RATE SECONDS CAFILE [--tick-ms N] "
		                "[--host NAME]\n");
		return 64;
	}
	char authority[300], bearer[4096];
	if (snprintf(authority, sizeof(authority), "%s:%ld", host, port) >=
	        (int)sizeof(authority) ||
	    snprintf(bearer, sizeof(bearer), "Bearer %s", argv[2]) >= (int)sizeof(bearer))
		return 64;

	int fd;
	SSL *ssl = tls_connect(&fd, (int)port, host, argv[5]);
	nghttp2_session_callbacks *cb;
	nghttp2_session *s;
	if (nghttp2_session_callbacks_new(&cb))
		return 71;
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
	if (nghttp2_session_client_new(&s, cb, NULL))
		return 71;
	nghttp2_session_callbacks_del(cb);
	/* no push; windows large enough that no WINDOW_UPDATE is due in a run */
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	                               {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24}};
	if (nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 2) ||
	    nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, 1 << 30))
		return 71;

	int ep = epoll_create1(EPOLL_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	long ns = tick_ms * 1000000L;
	struct itimerspec its = {.it_interval = {ns / 1000000000L, ns % 1000000000L},
	                         .it_value = {0, 1000000L}};
	struct epoll_event sev = {.events = EPOLLIN, .data.u32 = SOCK_ID};
	struct epoll_event tev = {.events = EPOLLIN, .data.u32 = TIMER_ID};
	if (ep < 0 || tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &sev) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev) < 0)
		return 71;

	struct counts c0 = {0}, c1 = {0};
	double t0 = mono_s(), w0 = t0 + secs * 0.1, w1 = t0 + secs * 0.9, t_w0 = 0, t_w1 = 0;
	double stop = t0 + secs, hard = stop + GRACE_S, t;
	long seq = 0, owed = 0;      /* owed: requests due, in thousandths */
	int phase = 0, want_out = 0; /* phase 0 warm-up, 1 measuring, 2 tail */
	flush(ssl, s);               /* the preface and SETTINGS */
	while ((t = mono_s()) < hard && (t < stop || inflight > 0)) {
		if (phase == 0 && t >= w0) {
			c0 = now_c, cpu(&c0), t_w0 = t, phase = 1;
		} else if (phase == 1 && t >= w1) {
			c1 = now_c, cpu(&c1), t_w1 = t, phase = 2;
		}
		struct epoll_event evs[8];
		now_c.epoll_waits++;
		int n = epoll_wait(ep, evs, 8, 100);
		for (int k = 0; k < n; k++) {
			if (evs[k].data.u32 == SOCK_ID) {
				if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
					drain(ssl, s);
				continue;
			}
			uint64_t ticks;
			if (read(tfd, &ticks, sizeof(ticks)) != sizeof(ticks) || t >= stop)
				continue;
			owed += (long)ticks * rate * tick_ms;
			int short_of_streams = 0;
			for (; owed >= 1000; owed -= 1000) {
				int r = start(s, authority, bearer, seq);
				if (r == -EAGAIN) {
					short_of_streams = 1;
					owed = 0; /* as floor.c: a missed tick is not made up */
					break;
				}
				if (r < 0)
					return 70;
				seq++;
			}
			now_c.skipped += short_of_streams;
		}
		int pending = flush(ssl, s);
		if (pending != want_out) {
			sev.events = EPOLLIN | (pending ? EPOLLOUT : 0);
			epoll_ctl(ep, EPOLL_CTL_MOD, fd, &sev);
			want_out = pending;
		}
	}
	if (phase < 2) {
		fprintf(stderr, "floor-h2: the run ended before its measured window did\n");
		return 69;
	}
	double win = t_w1 - t_w0;
	long d = c1.done - c0.done;
	double per = d > 0 ? (double)d : 1.0;
	/* floor.c's keys first; its "connection" is a stream slot here */
	printf("{\"bench\": \"floor-h2\", \"transport\": \"h2-tls\", \"tls\": \"%s\", "
	       "\"tick_ms\": %ld, \"rate\": %ld, \"requests\": %ld, \"answered_201\": %ld, "
	       "\"achieved_per_s\": %ld, \"ticks_without_a_free_connection\": %ld, "
	       "\"cpu_us_per_request\": %.1f, \"user_us\": %.1f, \"sys_us\": %.1f, "
	       "\"ssl_writes_per_request\": %.2f, \"writes_per_request\": %.2f, "
	       "\"reads_per_request\": %.2f, \"epoll_waits_per_request\": %.2f, "
	       "\"seconds_measured\": %.1f, \"unanswered_at_exit\": %d}\n",
	       SSL_get_version(ssl), tick_ms, rate, d, c1.ok - c0.ok, (long)(d / win),
	       c1.skipped - c0.skipped, (c1.user_us - c0.user_us + c1.sys_us - c0.sys_us) / per,
	       (c1.user_us - c0.user_us) / per, (c1.sys_us - c0.sys_us) / per,
	       (c1.ssl_writes - c0.ssl_writes) / per, (c1.writes - c0.writes) / per,
	       (c1.reads - c0.reads) / per, (c1.epoll_waits - c0.epoll_waits) / per, win, inflight);
	nghttp2_session_del(s);
	SSL_free(ssl);
	close(fd);
	return 0;
}
