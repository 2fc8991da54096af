/* SPDX-License-Identifier: MIT */
/*
 * ops-private: what the rooms of the ops module share (included only by
 * ops*.c). The module is one op table (ops.c: dispatch, the policy check,
 * the helpers every op uses, reload and audit) in rooms by concern:
 * ops-upload.c (submit, validate), ops-jobs.c (jobs, rows, wait, the job
 * actions, resend, track, a job's end), ops-tenants.c (status, stats,
 * tenants, check).
 */
#pragma once

#include "ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "auth.h"
#include "buf.h"
#include "build-config.h"
#include "crypto.h"
#include "csv.h"
#include "valid.h"
#include "http.h"
#include "ctl.h"
#include "daemon.h"
#include "hook.h"
#include "log.h"
#include "graph.h"
#include "mailmsg.h"
#include "policy.h"
#include "proto.h"
#include "store.h"
#include "tenant.h"
#include "timeutil.h"
#include "upload.h"
#include "vis.h"

#define DEFAULT_REDIRECT "https://myapplications.microsoft.com"
#define RECENT_MS (24u * 3600u * 1000u) /* `jobs` without --all: finished in the last day */
/* Caps on what the daemon stores from a client (and shows to others): with
 * them one job's JSON stays under ~40 KiB, so that a page of jobs always
 * fits a frame (docs/protocol.md, Limits) */
#define MAX_NAME_BYTES 256u
#define MAX_FILENAME_BYTES 4096u
#define MAX_LANGUAGE_BYTES 20u
#define MAX_ERROR_CODE_BYTES 256u
#define JOBS_PAGE_DEFAULT 1000
#define JOBS_PAGE_MAX 1000
#define ROWS_PAGE_DEFAULT 1000
#define ROWS_PAGE_MAX 5000
/* a reply must fit one frame (PROTO_MAX_FRAME): pages end early past this */
#define REPLY_BUDGET (PROTO_MAX_FRAME / 4 * 3)

struct page {
	struct daemon *d;
	const struct peer *peer; /* jobs: whose view; NULL: no filter */
	int64_t tenant_id;       /* jobs: only this tenant's (0: every) */
	json_t *items;
	size_t bytes;   /* estimate of the encoded size so far */
	int64_t before; /* jobs: only ids below this (0: from the newest) */
	size_t limit;   /* jobs: items in a page */
	int64_t last;   /* jobs: id of the last item taken */
	bool more;      /* jobs: an item was left for the next page */
	int64_t *ids;   /* rows: the id of each item, to cut a page that is still too big */
	size_t n_ids, cap_ids;
};

struct tenant_counts {
	int64_t active_jobs, pending, succeeded, failed, cancelled;
};

/* ops-jobs.c */
void op_cancel(struct daemon *d, struct ctl_conn *conn, json_t *req);
void op_job(struct daemon *d, struct ctl_conn *conn, json_t *req);
void op_jobs(struct daemon *d, struct ctl_conn *conn, json_t *req);
void op_pause(struct daemon *d, struct ctl_conn *conn, json_t *req);
void op_resend(struct daemon *d, struct ctl_conn *conn, json_t *req);
void op_resume(struct daemon *d, struct ctl_conn *conn, json_t *req);
void op_retry(struct daemon *d, struct ctl_conn *conn, json_t *req);
void op_rows(struct daemon *d, struct ctl_conn *conn, json_t *req);
void op_track(struct daemon *d, struct ctl_conn *conn, json_t *req);
void op_wait(struct daemon *d, struct ctl_conn *conn, json_t *req);

/* ops-tenants.c */
void op_check(struct daemon *d, struct ctl_conn *conn, json_t *req);
void op_stats(struct daemon *d, struct ctl_conn *conn, json_t *req);
void op_status(struct daemon *d, struct ctl_conn *conn, json_t *req);
void op_tenants(struct daemon *d, struct ctl_conn *conn, json_t *req);
struct tenant_counts *ops_tenant_counts_get(struct daemon *d, bool all);
json_t *ops_tenant_json(struct daemon_tenant *dt, const struct tenant_counts *c);

/* ops-upload.c */
bool ops_field_ok(struct ctl_conn *conn, const char *what, const char *s, size_t max,
                  bool no_control);
void op_submit(struct daemon *d, struct ctl_conn *conn, json_t *req);
void op_validate(struct daemon *d, struct ctl_conn *conn, json_t *req);

/* ops.c */
bool ops_get_id(struct ctl_conn *conn, json_t *req, int64_t *ret);
bool ops_get_str(struct ctl_conn *conn, json_t *req, const char *key, const char **ret);
bool ops_job_ended(const struct store_job *j);
json_t *ops_job_json(struct daemon *d, const struct store_job *j);
bool ops_peer_may_use(const struct peer *p, const struct daemon_tenant *dt);
void ops_refuse(struct daemon *d, struct ctl_conn *conn, const char *op, int64_t job_id,
                const char *rule, char *why);
void ops_reply_job(struct daemon *d, struct ctl_conn *conn, int64_t id, const char *extra_key,
                   json_t *extra);
void ops_reply_store_error(struct ctl_conn *conn, int r, int64_t id);
struct daemon_tenant *ops_request_tenant(struct daemon *d, struct ctl_conn *conn, json_t *req,
                                         const char *op);
json_t *ops_str_or_null(const char *s);
const struct policy_groups *ops_tenant_groups(struct daemon *d, int64_t tenant_id);
size_t ops_text_cost(const char *s);
json_t *ops_time_or_null(uint64_t ms);
