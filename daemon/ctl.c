/* SPDX-License-Identifier: MIT */
#include "ctl.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
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
#include "upload.h"

#define MAX_CONNECTIONS 256
#define READ_BUFFER (64u * 1024u)
#define MAX_BUFFERED (2u * PROTO_MAX_FRAME + 64u * 1024u) /* unprocessed bytes per connection */

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
	struct ctl_conn *conns;
	unsigned n_conns;
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

static void on_conn_closed(uv_handle_t *h)
{
	struct ctl_conn *conn = h->data;
	proto_decoder_finish(&conn->dec);
	free(conn->user);
	free(conn);
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
	c->n_conns--;
	if (conn->upload) {
		upload_abort(conn->upload); /* nothing stored; frees itself */
		conn->upload = NULL;
	}
	if (conn->gone) {
		ctl_conn_gone_fn fn = conn->gone;
		conn->gone = NULL;
		fn(conn->gone_userdata);
	}
	uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
}

static void on_written(uv_write_t *req, int status)
{
	struct write_req *w = req->data;
	struct ctl_conn *conn = w->conn;
	buf_finish(&w->data);
	free(w);
	conn->writes--;
	if (conn->closing)
		return;
	if (status < 0 || (conn->close_after_write && conn->writes == 0))
		conn_close(conn);
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
	uv_buf_t b = uv_buf_init(w->data.data, (unsigned)w->data.len);
	int r = uv_write(&w->req, (uv_stream_t *)&conn->pipe, &b, 1, on_written);
	if (r < 0) {
		buf_finish(&w->data);
		free(w);
		conn_close(conn);
		return;
	}
	conn->writes++;
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
	*buf = uv_buf_init(c->read_buffer, sizeof(c->read_buffer));
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
	if (proto_decoder_feed(&conn->dec, buf->base, (size_t)nread) < 0) {
		conn_close(conn);
		return;
	}
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
	if (!conn->reading && !conn->closing && !conn->upload_paused &&
	    proto_decoder_pending(&conn->dec) < MAX_BUFFERED) {
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

static void handle_request(struct ctl_conn *conn, const char *payload, size_t len)
{
	json_error_t jerr;
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
	while (!conn->closing && conn->state != CONN_BUSY) {
		const char *payload;
		size_t len;
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
			if (r == 1) {
				conn->upload_paused = true;
				stop_reading(conn);
			}
		} else {
			upload_end(conn->upload);
			conn->state = CONN_BUSY;
		}
	}
	conn->processing = false;
	if (conn->closing)
		return;
	if (proto_decoder_pending(&conn->dec) >= MAX_BUFFERED)
		stop_reading(conn);
	else if (!conn->close_after_write)
		start_reading(conn);
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
	start_reading(conn);
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
	if (uv_accept(server, (uv_stream_t *)&conn->pipe) < 0) {
		uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
		return;
	}
	conn->next = c->conns;
	if (c->conns)
		c->conns->prev = conn;
	c->conns = conn;
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
	if (!conn->user || c->n_conns > MAX_CONNECTIONS) {
		log_warning("Refusing a control connection: %u open already", c->n_conns - 1);
		conn_close(conn);
		return;
	}
	start_reading(conn);
}

static int listen_path(struct ctl *c, const char *path)
{
	struct stat st;
	/* a socket left by an earlier run; anything else at that path stays */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	int r = uv_pipe_bind(&c->server, path);
	if (r < 0)
		return r;
	c->path = strdup(path);
	if (chmod(path, socket_mode(c->daemon)) < 0)
		return -errno;
	if (c->have_group && chown(path, (uid_t)-1, c->allow_gid) < 0 && getuid() == 0)
		log_warning("Failed to give socket '%s' to group %u: %s", path,
			    (unsigned)c->allow_gid, strerror(errno));
	return 0;
}

void ctl_tenants_changed(struct ctl *c)
{
	/* a socket systemd made keeps its unit's mode */
	if (c && c->path && chmod(c->path, socket_mode(c->daemon)) < 0)
		log_warning("Failed to set the mode of socket '%s': %s", c->path, strerror(errno));
}

int ctl_create(struct daemon *d, const char *path, int listen_fd, struct ctl **ret)
{
	int r;
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
	free(c);
}

void ctl_destroy(struct ctl *c)
{
	if (!c)
		return;
	while (c->conns)
		conn_close(c->conns);
	if (c->path) {
		unlink(c->path);
		free(c->path);
		c->path = NULL;
	}
	uv_close((uv_handle_t *)&c->server, on_server_closed);
}
