/* SPDX-License-Identifier: MIT */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "ops.h"
#include "policy.h"
#include "proto.h"
#include "timeutil.h"
#include "upload.h"

#define MAX_CONNECTIONS 256 /* every uid but root's and the daemon's, together */
/* root and the daemon's own uid are refused only past this: a member who
 * fills the 256 slots above does not lock them out */
#define MAX_CONNECTIONS_HARD 512
#define READ_BUFFER (64u * 1024u)
#define SMALL_INPUT (16u * 1024u) /* what a connection may always hold unhandled */
#define MAX_BUFFERED (2u * PROTO_MAX_FRAME + 64u * 1024u) /* unprocessed bytes per connection */
/* Bytes of requests read but not yet handled, all connections together
 * (a frame under way counts whole once its header is in). A connection may
 * always hold SMALL_INPUT (a small request is never kept waiting); past
 * that it is read only when its frame fits under this total. */
#define INPUT_BUDGET (8u << 20)
/* Replies a client has not read yet: those libuv still holds
 * (uv_stream_get_write_queue_size) and those in the socket (SIOCOUTQ).
 * A connection's next request is handled only once fewer than
 * PIPELINE_ALLOWANCE bytes of its replies are unread: a client that
 * pipelines and never reads costs one reply, not one per request. While
 * one waits, a timer looks every REPLY_POLL_MS whether it has read. And
 * when the replies libuv holds for all connections pass REPLY_BUDGET, the
 * connections with most of them are closed (Redis's output buffer limit). */
#define PIPELINE_ALLOWANCE (16u << 10)
#define REPLY_POLL_MS 10
#define REPLY_BUDGET (8u << 20)
#define MAX_ERROR_MESSAGE 4096u /* bytes of an error reply's message */
/* The largest request (not upload data): a `submit` with every option at
 * its cap is ~17 KiB. A larger one is dropped unread and refused, so that
 * 1 MiB of JSON is never buffered or parsed. */
#define MAX_REQUEST (64u << 10)
#define REFUSAL_LOG_SLOTS 32
#define REFUSAL_LOG_MS (60u * 1000u) /* one refusal log line per uid per minute */

enum conn_state {
	CONN_IDLE,   /* reading requests */
	CONN_BUSY,   /* a request is under way; frames wait */
	CONN_UPLOAD, /* data frames go to the upload */
};

struct ctl {
	struct daemon *daemon;
	uv_pipe_t server;
	char *path; /* unlinked on destroy when we bound it */
	bool have_group;
	gid_t allow_gid;
	struct ctl_conn *conns, *conns_tail; /* in the order of accept */
	unsigned n_conns;
	size_t input_bytes; /* sum of the connections' input_counted */
	size_t reply_bytes; /* reply bytes of every connection not yet written out */
	unsigned n_blocked; /* connections waiting for one of the two budgets */
	bool waking, wake_again, destroying;
	uv_timer_t poll;  /* while connections wait for their client to read */
	unsigned handles; /* server and poll still open */
	struct {
		uid_t uid;
		uint64_t at_ms; /* last logged refusal; 0: slot free */
		unsigned count; /* refusals since */
	} refusals[REFUSAL_LOG_SLOTS];
	char read_buffer[READ_BUFFER];
	bool read_buffer_busy;
};

struct ctl_conn {
	struct ctl *ctl;
	uv_pipe_t pipe;
	struct proto_decoder dec;
	enum conn_state state;
	uid_t uid;
	char *user;
	struct peer peer; /* uid, groups; peer.user is user */
	bool allowed;
	bool reading;
	bool upload_paused;
	bool processing;
	bool closing;
	bool close_after_write;
	bool refused;      /* over a connection cap: answered, then closed */
	bool got_request;  /* the first request has arrived */
	bool timer_armed;  /* counting an idle period */
	bool progress;     /* bytes moved since the timer was armed */
	bool blocked;      /* counted in ctl.n_blocked */
	unsigned handles;  /* pipe and timer still open */
	uv_timer_t timer;  /* first-request, idle, unread-reply and stalled-upload timeout */
	size_t input_counted; /* decoder bytes counted in ctl.input_bytes */
	size_t reply_bytes;   /* bytes of this connection's replies not yet written out */
	size_t discard;       /* bytes of a too large request still to drop */
	unsigned writes;
	struct upload *upload;
	ctl_conn_gone_fn gone;
	void *gone_userdata;
	struct ctl_conn *prev, *next;
};

struct write_req {
	uv_write_t req;
	struct ctl_conn *conn;
	struct buf data;
};

static void conn_close(struct ctl_conn *conn);
static void process(struct ctl_conn *conn);
static void conn_update(struct ctl_conn *conn);
static void log_refusal(struct ctl *c, uid_t uid, const char *why);
static void shed_unread(struct ctl *c);

static void on_conn_closed(uv_handle_t *h)
{
	struct ctl_conn *conn = h->data;
	if (--conn->handles > 0)
		return;
	proto_decoder_finish(&conn->dec);
	free(conn->user);
	free(conn);
}

static size_t conn_write_queue(const struct ctl_conn *conn)
{
	return uv_stream_get_write_queue_size((const uv_stream_t *)&conn->pipe);
}

/* May the connection's next request be handled now, as far as its unread
 * replies go? */
static bool conn_replies_ok(const struct ctl_conn *conn)
{
	size_t q = conn_write_queue(conn);
	if (q >= PIPELINE_ALLOWANCE)
		return false;
	uv_os_fd_t fd;
	int unread = 0;
	if (uv_fileno((const uv_handle_t *)&conn->pipe, &fd) < 0 || ioctl(fd, SIOCOUTQ, &unread) < 0)
		return true;
	return q + (size_t)(unread > 0 ? unread : 0) < PIPELINE_ALLOWANCE;
}

/* A whole request waits in the decoder. */
static bool conn_has_frame(const struct ctl_conn *conn)
{
	size_t f = proto_decoder_frame_size(&conn->dec);
	return f > 0 && proto_decoder_pending(&conn->dec) >= f;
}

/* Wake the connections that wait for a budget (after bytes were freed). */
static void wake_blocked(struct ctl *c)
{
	if (c->destroying)
		return;
	if (c->waking) { /* the loop below goes round again */
		c->wake_again = true;
		return;
	}
	c->waking = true;
	do {
		c->wake_again = false;
		for (struct ctl_conn *k = c->conns, *next; k && c->n_blocked > 0; k = next) {
			next = k->next;
			if (k->blocked)
				process(k);
		}
	} while (c->wake_again && c->n_blocked > 0);
	c->waking = false;
}

static void set_blocked(struct ctl_conn *conn, bool blocked)
{
	if (conn->blocked == blocked)
		return;
	conn->blocked = blocked;
	if (blocked)
		conn->ctl->n_blocked++;
	else
		conn->ctl->n_blocked--;
}

static void conn_close(struct ctl_conn *conn)
{
	if (conn->closing)
		return;
	conn->closing = true;
	struct ctl *c = conn->ctl;
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		c->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	else
		c->conns_tail = conn->prev;
	c->n_conns--;
	set_blocked(conn, false);
	c->input_bytes -= conn->input_counted;
	conn->input_counted = 0;
	if (conn->upload) {
		upload_abort(conn->upload); /* nothing stored; frees itself */
		conn->upload = NULL;
	}
	if (conn->gone) {
		ctl_conn_gone_fn fn = conn->gone;
		conn->gone = NULL;
		fn(conn->gone_userdata);
	}
	/* the pending writes fail with UV_ECANCELED: on_written gives their
	 * bytes back to the budget */
	uv_close((uv_handle_t *)&conn->timer, on_conn_closed);
	uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
	wake_blocked(c);
}

static void on_written(uv_write_t *req, int status)
{
	struct write_req *w = req->data;
	struct ctl_conn *conn = w->conn;
	struct ctl *c = conn->ctl;
	conn->reply_bytes -= w->data.len;
	c->reply_bytes -= w->data.len;
	buf_finish(&w->data);
	free(w);
	conn->writes--;
	conn->progress = true;
	if (conn->closing)
		return;
	if (status < 0 || (conn->close_after_write && conn->writes == 0)) {
		conn_close(conn);
		return;
	}
	process(conn); /* its queue may be short enough again */
	wake_blocked(c);
}

static void send_json(struct ctl_conn *conn, json_t *reply)
{
	char *text = json_dumps(reply, JSON_COMPACT);
	json_decref(reply);
	struct write_req *w = calloc(1, sizeof(*w));
	if (!text || !w || proto_frame_append(&w->data, text, strlen(text)) < 0) {
		/* out of memory or a reply larger than a frame: the client sees
		 * the connection close and reports a temporary failure */
		log_error("Failed to send a reply: %s", text ? "too large or out of memory"
							     : "out of memory");
		free(text);
		if (w)
			buf_finish(&w->data);
		free(w);
		conn_close(conn);
		return;
	}
	free(text);
	w->conn = conn;
	w->req.data = w;
	/* what the socket takes now is not kept until the next loop turn;
	 * only the rest is queued, in a buffer of its size */
	uv_buf_t b = uv_buf_init(w->data.data, (unsigned)w->data.len);
	int r = uv_try_write((uv_stream_t *)&conn->pipe, &b, 1);
	if (r > 0 && (size_t)r == w->data.len) {
		buf_finish(&w->data);
		free(w);
		conn->progress = true;
		if (conn->close_after_write && conn->writes == 0)
			conn_close(conn);
		return;
	}
	if (r > 0) {
		buf_consume(&w->data, (size_t)r);
		char *rest = realloc(w->data.data, w->data.len + 1);
		if (rest) {
			w->data.data = rest;
			w->data.cap = w->data.len + 1;
		}
	} else if (r != UV_EAGAIN) {
		buf_finish(&w->data);
		free(w);
		conn_close(conn);
		return;
	}
	b = uv_buf_init(w->data.data, (unsigned)w->data.len);
	r = uv_write(&w->req, (uv_stream_t *)&conn->pipe, &b, 1, on_written);
	if (r < 0) {
		buf_finish(&w->data);
		free(w);
		conn_close(conn);
		return;
	}
	conn->writes++;
	conn->reply_bytes += w->data.len;
	conn->ctl->reply_bytes += w->data.len;
	conn->progress = true;
	if (conn->ctl->reply_bytes > REPLY_BUDGET)
		shed_unread(conn->ctl);
}

/* The replies waiting for clients that do not read are over the budget:
 * close those connections, the one with most waiting first, until under
 * it (as Redis does with its client output buffer limit). A client that
 * reads is not among them: its queue is empty. */
static void shed_unread(struct ctl *c)
{
	/* the closed connections' bytes are freed later, by on_written */
	size_t held = c->reply_bytes;
	for (unsigned i = 0; i < 64 && held > REPLY_BUDGET; i++) {
		struct ctl_conn *worst = NULL;
		size_t most = 0;
		for (struct ctl_conn *k = c->conns; k; k = k->next) {
			size_t q = conn_write_queue(k);
			if (!k->closing && q > most) {
				most = q;
				worst = k;
			}
		}
		if (!worst)
			return;
		log_refusal(c, worst->uid, "closing a connection whose replies are not read: "
					   "the replies waiting for all clients are past 8 MiB");
		held -= worst->reply_bytes < held ? worst->reply_bytes : held;
		conn_close(worst);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct ctl_conn *conn = h->data;
	struct ctl *c = conn->ctl;
	if (c->read_buffer_busy) {
		*buf = uv_buf_init(NULL, 0); /* cannot happen: reads are handled at once */
		return;
	}
	c->read_buffer_busy = true;
	/* a connection without room granted for a large frame reads little */
	*buf = uv_buf_init(c->read_buffer,
			   conn->input_counted > SMALL_INPUT || conn->discard ? sizeof(c->read_buffer)
									     : SMALL_INPUT);
}

static void start_reading(struct ctl_conn *conn);

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct ctl_conn *conn = stream->data;
	conn->ctl->read_buffer_busy = false;
	if (nread < 0) {
		conn_close(conn);
		return;
	}
	if (nread == 0)
		return;
	if (conn->refused)
		return; /* answered already; its requests are dropped */
	conn->progress = true;
	const char *p = buf->base;
	size_t n = (size_t)nread;
	bool refuse = false;
	if (conn->discard) { /* a request too large to read: dropped as it comes */
		size_t k = n < conn->discard ? n : conn->discard;
		conn->discard -= k;
		p += k;
		n -= k;
		refuse = conn->discard == 0;
	}
	if (n && proto_decoder_feed(&conn->dec, p, n) < 0) {
		conn_close(conn);
		return;
	}
	if (refuse)
		ctl_conn_error(conn, PROTO_ERR_USAGE,
			       "the request is larger than %u bytes (data frames of an upload may "
			       "be 1 MiB; requests are small)",
			       MAX_REQUEST);
	else
		process(conn);
}

static void stop_reading(struct ctl_conn *conn)
{
	if (conn->reading) {
		uv_read_stop((uv_stream_t *)&conn->pipe);
		conn->reading = false;
	}
}

static void start_reading(struct ctl_conn *conn)
{
	if (!conn->reading && !conn->closing) {
		if (uv_read_start((uv_stream_t *)&conn->pipe, on_alloc, on_read) == 0)
			conn->reading = true;
	}
}

static bool peer_allowed(struct daemon *d, const struct peer *p)
{
	if (policy_role(p, &d->groups) == POLICY_ROLE_ADMIN)
		return true;
	for (size_t i = 0; i < d->n_tenants; i++)
		if (policy_role(p, &d->tenants[i]->groups) != POLICY_ROLE_NONE)
			return true;
	return d->n_tenants == 0 && policy_role(p, &d->groups) != POLICY_ROLE_NONE;
}

/* 0660 with the socket's group when every tenant's groups are [daemon]'s
 * allow_group; else 0666 and the peer check keeps everyone else out. */
static mode_t socket_mode(struct daemon *d)
{
	mode_t mode = policy_socket_mode(&d->groups);
	for (size_t i = 0; i < d->n_tenants; i++) {
		const struct policy_groups *g = &d->tenants[i]->groups;
		if (g->have_admin || (g->have_allow && (!d->groups.have_allow ||
							 g->allow_gid != d->groups.allow_gid)))
			mode = 0666;
	}
	return mode;
}

static void on_timeout(uv_timer_t *t)
{
	struct ctl_conn *conn = t->data;
	struct daemon *d = conn->ctl->daemon;
	const char *why;
	uint64_t ms = d->config.idle_timeout_ms;
	if (!conn->got_request) {
		why = "no request within first_request_timeout";
		ms = d->config.first_request_timeout_ms;
	} else if (conn_write_queue(conn) > 0) {
		why = "its replies were not read within idle_timeout";
	} else if (conn->state == CONN_UPLOAD) {
		why = "its upload made no progress within idle_timeout; nothing of it is stored";
	} else {
		why = "idle for longer than idle_timeout";
	}
	log_info("Closing a control connection of %s (uid %u): %s (%llu ms)", conn->user,
		 (unsigned)conn->uid, why, (unsigned long long)ms);
	conn_close(conn);
}

/* The timer runs while the daemon waits for the client (its next request,
 * the rest of its upload, or that it reads its replies), and stops while
 * the client waits for the daemon (a request under way, `wait`, an import,
 * an upload paused by the daemon). Any byte moved restarts it. */
static void conn_arm_timer(struct ctl_conn *conn)
{
	if (!conn->got_request)
		return; /* the first-request deadline runs from accept, unchanged */
	bool on_client = conn_write_queue(conn) > 0 || conn->state == CONN_IDLE || conn->discard ||
			 (conn->state == CONN_UPLOAD && !conn->upload_paused);
	if (!on_client) {
		uv_timer_stop(&conn->timer);
		conn->timer_armed = false;
	} else if (!conn->timer_armed || conn->progress) {
		uv_timer_start(&conn->timer, on_timeout, conn->ctl->daemon->config.idle_timeout_ms, 0);
		conn->timer_armed = true;
	}
	conn->progress = false;
}

static void on_poll(uv_timer_t *t)
{
	struct ctl *c = t->data;
	wake_blocked(c);
	if (c->n_blocked == 0)
		uv_timer_stop(&c->poll);
}

/* After anything changed: budgets, reading, timer. */
static void conn_update(struct ctl_conn *conn)
{
	struct ctl *c = conn->ctl;
	if (conn->closing)
		return;
	size_t pending = proto_decoder_pending(&conn->dec);
	/* a frame under way counts whole from its header on: a connection
	 * granted room for it always completes it, so that connections
	 * holding half frames never wait on each other */
	size_t frame = proto_decoder_frame_size(&conn->dec);
	if (conn->state == CONN_IDLE && frame > PROTO_HEADER + MAX_REQUEST)
		frame = 0; /* to be skipped, not held */
	size_t need = pending > frame ? pending : frame;
	bool granted = need <= SMALL_INPUT || need <= conn->input_counted ||
		       c->input_bytes - conn->input_counted + need <= INPUT_BUDGET;
	/* the buffer: exactly a granted large frame; given back after it */
	size_t cap = conn->dec.in.cap;
	if (granted && need > SMALL_INPUT && cap < need + 1)
		granted = proto_decoder_resize(&conn->dec, need) == 0;
	else if (cap > 2 * SMALL_INPUT && cap > 2 * (need + 1))
		proto_decoder_resize(&conn->dec, need);
	size_t count = granted ? need : pending;
	bool freed = count < conn->input_counted;
	c->input_bytes = c->input_bytes - conn->input_counted + count;
	conn->input_counted = count;

	bool input_ok = granted && pending < MAX_BUFFERED;
	bool replies_ok = conn->state != CONN_IDLE || !conn_has_frame(conn) || conn_replies_ok(conn);
	set_blocked(conn, !input_ok || !replies_ok);
	if (!replies_ok && !uv_is_active((uv_handle_t *)&c->poll))
		uv_timer_start(&c->poll, on_poll, REPLY_POLL_MS, REPLY_POLL_MS);
	if (input_ok && replies_ok && !conn->upload_paused && !conn->close_after_write)
		start_reading(conn);
	else
		stop_reading(conn);
	conn_arm_timer(conn);
	if (freed && c->input_bytes < INPUT_BUDGET)
		wake_blocked(c);
}

static void handle_request(struct ctl_conn *conn, const char *payload, size_t len)
{
	json_error_t jerr;
	if (!conn->got_request) {
		conn->got_request = true;
		uv_timer_stop(&conn->timer);
		conn->timer_armed = false;
	}
	if (!conn->allowed) {
		char *why = NULL;
		struct daemon *d = conn->ctl->daemon;
		if (policy_check(&conn->peer, &d->groups, POLICY_ANY, NULL, NULL, &why) == 0)
			why = NULL; /* the groups cannot change under a connection */
		log_warning("Refused a request from uid %u (%s): %s", (unsigned)conn->uid,
			    conn->user, why ? why : "out of memory");
		conn->state = CONN_BUSY;
		conn->close_after_write = true;
		stop_reading(conn);
		ctl_conn_error(conn, PROTO_ERR_PERMISSION, "%s", why ? why : "permission denied");
		free(why);
		return;
	}
	json_t *req = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	conn->state = CONN_BUSY;
	if (!json_is_object(req)) {
		json_decref(req);
		ctl_conn_error(conn, PROTO_ERR_USAGE, "request is not a JSON object: %s", jerr.text);
		return;
	}
	ops_dispatch(conn->ctl->daemon, conn, req);
	json_decref(req);
}

static void process(struct ctl_conn *conn)
{
	if (conn->processing)
		return;
	conn->processing = true;
	while (!conn->closing && conn->state != CONN_BUSY &&
	       (conn->state != CONN_IDLE || conn_replies_ok(conn)) &&
	       (conn->state != CONN_UPLOAD || !conn->upload_paused)) {
		const char *payload;
		size_t len;
		size_t frame = proto_decoder_frame_size(&conn->dec);
		if (conn->state == CONN_IDLE && frame > PROTO_HEADER + MAX_REQUEST) {
			/* not buffered, not parsed: skipped, then refused */
			size_t have = proto_decoder_pending(&conn->dec);
			size_t k = have < frame ? have : frame;
			proto_decoder_skip(&conn->dec, k);
			conn->discard = frame - k;
			if (!conn->got_request) {
				conn->got_request = true;
				uv_timer_stop(&conn->timer);
				conn->timer_armed = false;
			}
			conn->state = CONN_BUSY;
			if (conn->discard == 0) {
				conn->processing = false;
				ctl_conn_error(conn, PROTO_ERR_USAGE,
					       "the request is larger than %u bytes", MAX_REQUEST);
				return;
			}
			break;
		}
		int r = proto_decoder_next(&conn->dec, &payload, &len);
		if (r < 0) {
			log_info("Closing a control connection (uid %u): frame larger than %u bytes",
				 (unsigned)conn->uid, PROTO_MAX_FRAME);
			conn_close(conn);
			break;
		}
		if (r == 0)
			break;
		if (conn->state == CONN_IDLE) {
			handle_request(conn, payload, len);
		} else if (len > 0) {
			r = upload_push(conn->upload, payload, len);
			if (r < 0) {
				conn_close(conn);
				break;
			}
			if (r == 1)
				conn->upload_paused = true;
		} else {
			conn->state = CONN_BUSY; /* before: the reply may come at once */
			upload_end(conn->upload);
		}
	}
	conn->processing = false;
	conn_update(conn);
}

void ctl_conn_reply(struct ctl_conn *conn, json_t *reply)
{
	conn->gone = NULL;
	send_json(conn, reply);
	if (conn->closing || conn->close_after_write)
		return;
	conn->state = CONN_IDLE;
	process(conn);
}

void ctl_conn_error(struct ctl_conn *conn, const char *code, const char *fmt, ...)
{
	struct buf m = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&m, fmt, ap);
	va_end(ap);
	if (m.len > MAX_ERROR_MESSAGE) {
		/* a message quoting a client's value: cut (on a UTF-8 boundary)
		 * so that the reply fits a frame whatever was sent */
		size_t n = MAX_ERROR_MESSAGE;
		while (n > 0 && ((unsigned char)m.data[n] & 0xc0) == 0x80)
			n--;
		m.len = n;
		m.data[n] = '\0';
		buf_append_str(&m, "...");
	}
	json_t *reply = json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", code, "message",
				  m.data ? m.data : "");
	buf_finish(&m);
	ctl_conn_reply(conn, reply);
}

void ctl_conn_start_upload(struct ctl_conn *conn, struct upload *u)
{
	conn->upload = u;
	conn->state = CONN_UPLOAD;
}

void ctl_conn_upload_done(struct ctl_conn *conn)
{
	conn->upload = NULL;
	conn->upload_paused = false;
}

void ctl_conn_resume(struct ctl_conn *conn)
{
	conn->upload_paused = false;
	process(conn);
}

void ctl_conn_on_gone(struct ctl_conn *conn, ctl_conn_gone_fn fn, void *userdata)
{
	conn->gone = fn;
	conn->gone_userdata = userdata;
}

uid_t ctl_conn_uid(const struct ctl_conn *conn)
{
	return conn->uid;
}

const char *ctl_conn_user(const struct ctl_conn *conn)
{
	return conn->user;
}

const struct peer *ctl_conn_peer(const struct ctl_conn *conn)
{
	return &conn->peer;
}

unsigned ctl_connections(const struct ctl *c)
{
	return c->n_conns;
}

/* The peer's supplementary groups (as many as fit) into p. */
static void peer_groups(int fd, struct peer *p)
{
	socklen_t len = sizeof(p->groups);
	p->n_groups = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, p->groups, &len) < 0
			      ? 0
			      : len / sizeof(gid_t);
}

static char *user_name(uid_t uid)
{
	/* NSS lookups may block on a remote directory; admin hosts use local
	 * users, and the answer is cached per connection only */
	struct passwd pw, *res = NULL;
	char tmp[4096];
	struct buf b = BUF_INIT;
	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		buf_append_str(&b, res->pw_name);
	else
		buf_printf(&b, "uid %u", (unsigned)uid);
	return buf_steal(&b);
}

static bool uid_privileged(uid_t uid)
{
	return uid == 0 || uid == getuid();
}

/* Log a refusal of uid's connections at most once a minute. */
static void log_refusal(struct ctl *c, uid_t uid, const char *why)
{
	uint64_t now = time_mono_ms();
	size_t slot = 0;
	for (size_t i = 0; i < REFUSAL_LOG_SLOTS; i++) {
		if (c->refusals[i].at_ms && c->refusals[i].uid == uid) {
			slot = i;
			break;
		}
		if (c->refusals[i].at_ms < c->refusals[slot].at_ms)
			slot = i; /* a free or the oldest slot */
	}
	if (c->refusals[slot].at_ms && c->refusals[slot].uid == uid &&
	    now - c->refusals[slot].at_ms < REFUSAL_LOG_MS) {
		c->refusals[slot].count++;
		return;
	}
	unsigned more = c->refusals[slot].uid == uid ? c->refusals[slot].count : 0;
	log_warning("Refusing control connections of uid %u: %s (%u more refused in the last "
		    "minute; logged once a minute)",
		    (unsigned)uid, why, more);
	c->refusals[slot].uid = uid;
	c->refusals[slot].at_ms = now ? now : 1;
	c->refusals[slot].count = 0;
}

/* The connection caps: max_connections_per_uid for each uid, MAX_CONNECTIONS
 * for every uid but root's and the daemon's together, MAX_CONNECTIONS_HARD
 * for those two. A refused connection is answered `temporary` with the
 * reason, and what it sends is dropped until it hangs up. */
static void conn_admit(struct ctl_conn *conn)
{
	struct ctl *c = conn->ctl;
	unsigned same = 0, members = 0;
	unsigned cap = c->daemon->config.max_connections_per_uid;
	for (const struct ctl_conn *k = c->conns; k; k = k->next) {
		if (k == conn || k->refused)
			continue;
		same += k->uid == conn->uid;
		members += !uid_privileged(k->uid);
	}
	struct buf why = BUF_INIT;
	if (uid_privileged(conn->uid))
		return; /* only the hard ceiling, checked by the caller */
	if (same >= cap)
		buf_printf(&why, "uid %u has %u connections open, the most one uid may have "
				 "(max_connections_per_uid)",
			   (unsigned)conn->uid, same);
	else if (members >= MAX_CONNECTIONS)
		buf_printf(&why, "%u connections are open, the most for all users together "
				 "(root may still connect)",
			   members);
	else
		return;
	log_refusal(c, conn->uid, why.data ? why.data : "too many connections");
	conn->refused = true;
	ctl_conn_error(conn, PROTO_ERR_TEMPORARY, "too many connections: %s; try again later",
		       why.data ? why.data : "out of memory");
	buf_finish(&why);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct ctl *c = server->data;
	if (status < 0)
		return;
	struct ctl_conn *conn = calloc(1, sizeof(*conn));
	if (!conn)
		return;
	conn->ctl = c;
	proto_decoder_init(&conn->dec, PROTO_MAX_FRAME);
	uv_pipe_init(server->loop, &conn->pipe, 0);
	conn->pipe.data = conn;
	uv_timer_init(server->loop, &conn->timer);
	conn->timer.data = conn;
	conn->handles = 2;
	if (uv_accept(server, (uv_stream_t *)&conn->pipe) < 0) {
		uv_close((uv_handle_t *)&conn->timer, on_conn_closed);
		uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
		return;
	}
	uv_timer_start(&conn->timer, on_timeout, c->daemon->config.first_request_timeout_ms, 0);
	/* oldest first: the budgets are handed out in the order of waiting */
	conn->prev = c->conns_tail;
	if (c->conns_tail)
		c->conns_tail->next = conn;
	else
		c->conns = conn;
	c->conns_tail = conn;
	c->n_conns++;

	uv_os_fd_t fd;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (uv_fileno((uv_handle_t *)&conn->pipe, &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		conn_close(conn);
		return;
	}
	conn->uid = cred.uid;
	conn->user = user_name(cred.uid);
	conn->peer.uid = cred.uid;
	conn->peer.gid = cred.gid;
	conn->peer.user = conn->user;
	peer_groups(fd, &conn->peer);
	/* root, the daemon's own uid, [daemon] admin_group, or a member of any
	 * tenant's allow_group or admin_group (policy.c); each op then shows
	 * only the tenants the peer may use (ops.c) */
	conn->allowed = peer_allowed(c->daemon, &conn->peer);
	if (!conn->user || c->n_conns > MAX_CONNECTIONS_HARD) {
		log_warning("Refusing a control connection: %u open already", c->n_conns - 1);
		conn_close(conn);
		return;
	}
	conn_admit(conn);
	conn_update(conn);
}

static int listen_path(struct ctl *c, const char *path)
{
	struct stat st;
	/* a socket left by an earlier run; anything else at that path stays */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	/* the socket is created with its mode (0660, or 0666 when an admin
	 * group that is not allow_group may connect: policy.c) by bind itself,
	 * whatever the process's umask: no moment where it is open to others,
	 * no chmod by path */
	mode_t old = umask(0777 & ~socket_mode(c->daemon));
	int r = uv_pipe_bind(&c->server, path);
	umask(old);
	if (r < 0)
		return r;
	c->path = strdup(path);
	/* the group, without following a link someone put at the path */
	if (c->have_group && fchownat(AT_FDCWD, path, (uid_t)-1, c->allow_gid,
				      AT_SYMLINK_NOFOLLOW) < 0 && getuid() == 0)
		log_warning("Failed to give socket '%s' to group %u: %s", path,
			    (unsigned)c->allow_gid, strerror(errno));
	return 0;
}

void ctl_tenants_changed(struct ctl *c)
{
	/* a socket systemd made keeps its unit's mode; ours only if it is
	 * still our socket at that path (no link followed to something else) */
	struct stat st;
	if (!c || !c->path || lstat(c->path, &st) < 0 || !S_ISSOCK(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 0777) == socket_mode(c->daemon))
		return;
	if (chmod(c->path, socket_mode(c->daemon)) < 0)
		log_warning("Failed to set the mode of socket '%s': %s", c->path, strerror(errno));
}

int ctl_create(struct daemon *d, const char *path, int listen_fd, struct ctl **ret)
{
	int r;
	/* the connections' large buffers (frames, replies: up to 1 MiB) come
	 * from mmap and go back to the system when freed, instead of
	 * fragmenting the heap (glibc raises its threshold otherwise) */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	struct ctl *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->daemon = d;
	const char *group = d->config.allow_group;
	if (group && *group) {
		struct group gr, *res = NULL;
		char tmp[4096];
		if (getgrnam_r(group, &gr, tmp, sizeof(tmp), &res) == 0 && res) {
			c->have_group = true;
			c->allow_gid = res->gr_gid;
		} else {
			log_warning("Group '%s' (allow_group) does not exist: only root and uid %u "
				    "may use the socket",
				    group, (unsigned)getuid());
		}
	}
	uv_pipe_init(d->loop, &c->server, 0);
	c->server.data = c;
	uv_timer_init(d->loop, &c->poll);
	c->poll.data = c;
	c->handles = 2;
	if (listen_fd >= 0)
		r = uv_pipe_open(&c->server, listen_fd);
	else
		r = listen_path(c, path);
	if (r == 0)
		/* the kernel caps it at net.core.somaxconn (4096): a burst of
		 * clients waits in the queue instead of failing with EAGAIN */
		r = uv_listen((uv_stream_t *)&c->server, SOMAXCONN, on_connection);
	if (r < 0) {
		log_error("Failed to listen on '%s': %s", path, uv_strerror(r));
		ctl_destroy(c);
		return r;
	}
	*ret = c;
	return 0;
}

static void on_server_closed(uv_handle_t *h)
{
	struct ctl *c = h->data;
	if (--c->handles == 0)
		free(c);
}

void ctl_destroy(struct ctl *c)
{
	if (!c)
		return;
	c->destroying = true;
	while (c->conns)
		conn_close(c->conns);
	if (c->path) {
		unlink(c->path);
		free(c->path);
		c->path = NULL;
	}
	uv_close((uv_handle_t *)&c->poll, on_server_closed);
	uv_close((uv_handle_t *)&c->server, on_server_closed);
}
