/* SPDX-License-Identifier: MIT */
/*
 * ctl: the control socket (docs/protocol.md). Accepts connections, checks
 * each peer (SO_PEERCRED, SO_PEERGROUPS; policy.h decides), splits the byte stream into frames,
 * hands JSON requests to ops_dispatch() and upload frames to the upload
 * under way, and writes replies. One request per connection at a time.
 * Bounds what each client can hold (docs/architecture.md, Trust
 * boundaries): requests over 64 KiB skipped and refused; the next request
 * handled only once the client has read its replies; input and unread
 * replies within global budgets; first-request and idle timeouts; a cap
 * of connections per uid that never locks out root.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

struct daemon;
struct upload;
struct ctl;
struct ctl_conn;

/* Listen on path (or on the socket-activated fd if listen_fd >= 0). */
int ctl_create(struct daemon *d, const char *path, int listen_fd, struct ctl **ret);
/* The tenants (their groups) changed at a reload: the socket's mode follows
 * (0666 when a tenant has groups of its own). NULL ok. */
void ctl_tenants_changed(struct ctl *c);
/* Stop accepting and close every connection. NULL ok. */
void ctl_destroy(struct ctl *c);

/* Reply to the request under way (takes the reference of reply). After a
 * reply the connection reads the next request. */
void ctl_conn_reply(struct ctl_conn *conn, json_t *reply);
/* Reply {"ok":false,"error":{"code":code,"message":...}}. */
void ctl_conn_error(struct ctl_conn *conn, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Data frames that follow go to u until the empty frame (upload_end). */
void ctl_conn_start_upload(struct ctl_conn *conn, struct upload *u);
/* The upload is finished (done_fn ran): forget it. */
void ctl_conn_upload_done(struct ctl_conn *conn);
/* Resume reading after upload_push() asked for a pause. */
void ctl_conn_resume(struct ctl_conn *conn);

/* Something to undo if the connection closes before its reply: */
typedef void (*ctl_conn_gone_fn)(void *userdata);
void ctl_conn_on_gone(struct ctl_conn *conn, ctl_conn_gone_fn fn, void *userdata);

uid_t ctl_conn_uid(const struct ctl_conn *conn);
/* Who the peer is (policy.h), borrowed for the connection's life. */
struct peer;
const struct peer *ctl_conn_peer(const struct ctl_conn *conn);
const char *ctl_conn_user(const struct ctl_conn *conn);
unsigned ctl_connections(const struct ctl *c);
