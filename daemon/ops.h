/* SPDX-License-Identifier: MIT */
/* ops: one handler per request op of docs/protocol.md. */
#pragma once

#include <jansson.h>
#include <stdint.h>

struct ctl_conn;
struct daemon;

/* Handle one request (req borrowed). Replies now or later through ctl_conn_*. */
void ops_dispatch(struct daemon *d, struct ctl_conn *conn, json_t *req);

/* A job reached a terminal state: answer its waiters, log its counts. */
void ops_job_done(struct daemon *d, int64_t job_id);
/* The tenant got blocked: answer every waiter (their jobs show blocked). */
struct daemon_tenant;
void ops_tenant_blocked(struct daemon *d, struct daemon_tenant *dt);
