/* SPDX-License-Identifier: MIT */
#include "conn.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void conn_init(struct conn *c)
{
	c->fd = -1;
	proto_decoder_init(&c->dec, PROTO_MAX_FRAME);
}

void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	proto_decoder_finish(&c->dec);
	proto_decoder_init(&c->dec, PROTO_MAX_FRAME);
}

/* connect(2) interrupted by a signal goes on in the background: wait for it. */
static int connect_finish(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int r;
	do
		r = poll(&p, 1, -1);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

int conn_open(struct conn *c, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, len + 1);

	conn_close(c);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = errno == EINTR ? connect_finish(fd) : -errno;
	if (r < 0)
		goto out;
	c->fd = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

static int send_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int conn_send_frame(struct conn *c, const void *data, size_t len)
{
	if (c->fd < 0)
		return -ENOTCONN;
	if (len > PROTO_MAX_FRAME)
		return -EMSGSIZE;
	uint8_t h[PROTO_HEADER];
	proto_put_header(h, (uint32_t)len);
	int r = send_all(c->fd, h, sizeof(h));
	if (r < 0 || len == 0)
		return r;
	return send_all(c->fd, data, len);
}

int conn_send_json(struct conn *c, const json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	int r = conn_send_frame(c, text, strlen(text));
	free(text);
	return r;
}

/* Read until one whole frame is buffered; *ret_payload is borrowed until the
 * next call. */
static int recv_frame(struct conn *c, const char **ret_payload, size_t *ret_len)
{
	char chunk[16384];
	for (;;) {
		int r = proto_decoder_next(&c->dec, ret_payload, ret_len);
		if (r != 0)
			return r < 0 ? r : 0;
		ssize_t n = recv(c->fd, chunk, sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		r = proto_decoder_feed(&c->dec, chunk, (size_t)n);
		if (r < 0)
			return r;
	}
}

int conn_recv_json(struct conn *c, json_t **ret)
{
	if (c->fd < 0)
		return -ENOTCONN;
	const char *payload;
	size_t len;
	int r = recv_frame(c, &payload, &len);
	if (r < 0)
		return r;
	json_t *msg = json_loadb(payload, len, 0, NULL);
	if (!json_is_object(msg)) {
		json_decref(msg);
		return -EBADMSG;
	}
	*ret = msg;
	return 0;
}

bool conn_readable(struct conn *c)
{
	if (c->fd < 0)
		return false;
	if (proto_decoder_pending(&c->dec) > 0)
		return true;
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	int r;
	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	return r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}
