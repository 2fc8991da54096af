/* SPDX-License-Identifier: MIT */
/*
 * conn: invitectl's end of the control socket (docs/protocol.md), with
 * blocking I/O. Every function returns 0 or a negative errno; the peer
 * closing the connection is -ECONNRESET. Writes use MSG_NOSIGNAL, so a daemon
 * that goes away mid-upload yields -EPIPE rather than SIGPIPE.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "proto.h"

struct conn {
	int fd; /* -1 while closed */
	struct proto_decoder dec;
};

void conn_init(struct conn *c);
/* Closes the socket (if open) and frees the buffers; c may be reused after. */
void conn_close(struct conn *c);
/* Connect to the Unix socket at path (borrowed). -ENAMETOOLONG when the path
 * does not fit sockaddr_un; otherwise connect(2)'s errors. */
int conn_open(struct conn *c, const char *path);
/* One frame of len bytes (borrowed), len <= PROTO_MAX_FRAME (else -EMSGSIZE). */
int conn_send_frame(struct conn *c, const void *data, size_t len);
/* One frame holding msg (borrowed) as compact JSON. */
int conn_send_json(struct conn *c, const json_t *msg);
/* Read one frame and parse it as a JSON object. *ret is a new reference,
 * owned by the caller. -EBADMSG when the payload is not a JSON object,
 * -EMSGSIZE when it announces more than PROTO_MAX_FRAME bytes. */
int conn_recv_json(struct conn *c, json_t **ret);
/* true when the daemon has sent something (or closed) that we have not read:
 * during an upload that means an early reply. Does not block. */
bool conn_readable(struct conn *c);
