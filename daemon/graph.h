/* SPDX-License-Identifier: MIT */
/*
 * graph: Microsoft Graph's invitation request and reply (GRAPH.md §3), and
 * what each reply means for the row: done, failed for good, worth another
 * try, a token problem, or the tenant-wide anti-abuse block; the same for
 * the directory's (§6): lookups by address, group member additions and the
 * reads that track acceptance. Pure: no I/O.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_response;
struct store_claim;

enum graph_outcome {
	GRAPH_OUTCOME_CREATED,   /* 201: invited */
	GRAPH_OUTCOME_FAILED,    /* the row fails now (4xx other than below) */
	GRAPH_OUTCOME_TRANSIENT, /* 408, 5xx, timeouts, resets: back off and retry */
	GRAPH_OUTCOME_THROTTLED, /* 429, or 503 with Retry-After: pause the tenant */
	GRAPH_OUTCOME_AUTH,      /* 401: new token, then retry */
	GRAPH_OUTCOME_BLOCKED,   /* 403 anti-abuse block: stop the tenant */
};

/* Whose budget a 429 says is spent (x-ms-throttle-scope, GRAPH.md §4). */
enum graph_throttle_scope {
	GRAPH_THROTTLE_UNKNOWN = 0, /* no header: the tenant's, as before */
	GRAPH_THROTTLE_TENANT,      /* Tenant_Application/..., Tenant/...: this tenant only */
	GRAPH_THROTTLE_APPLICATION, /* Application/...: every tenant of the application */
};

/* Which of the application's budgets a request draws on (GRAPH.md §4):
 * the invitation manager's, or the identity and access reads or writes
 * (lookups and acceptance reads; group additions). */
enum graph_budget {
	GRAPH_BUDGET_INVITATIONS = 0,
	GRAPH_BUDGET_READS,
	GRAPH_BUDGET_WRITES,
	GRAPH_BUDGET_NONE, /* not Graph's identity limits (sendMail: Exchange's) */
};

/* The scope of an x-ms-throttle-scope value (NULL ok). Pure. */
enum graph_throttle_scope graph_throttle_scope_parse(const char *value);

/* Every string in a graph_result is valid UTF-8 (SPEC §9): what Graph sent
 * that is not is kept with each invalid byte replaced by U+FFFD. */
struct graph_result {
	enum graph_outcome outcome;
	long http_status;      /* 0: no HTTP answer */
	char *error_code;      /* Graph's error.code, or our own for transport errors */
	char *error_message;   /* Graph's error.message, or what went wrong */
	char *request_id;
	char *invited_user_id; /* CREATED only */
	char *invite_redeem_url;
	uint64_t retry_after_ms;
	bool has_retry_after;
	enum graph_throttle_scope throttle_scope; /* THROTTLED only */
};

/* client-request-id (GRAPH.md §3): a GUID the client picks per request,
 * 36 characters. */
#define GRAPH_CLIENT_REQUEST_ID_LEN 36
/* A new random (version 4) GUID into out. */
void graph_new_request_id(char out[GRAPH_CLIENT_REQUEST_ID_LEN + 1]);

/* s[0..len) as a NUL-terminated valid UTF-8 copy (owned): each byte that is
 * not part of a valid sequence becomes U+FFFD. NULL when out of memory. */
char *graph_utf8_dup(const char *s, size_t len);

/* The POST /invitations body for a claimed row. *ret_body owned by caller. */
int graph_invitation_body(const struct store_claim *c, char **ret_body, size_t *ret_len);

/* Read an answer. Strings in *ret owned (graph_result_clear). 0 or -ENOMEM. */
int graph_classify(const struct http_response *resp, struct graph_result *ret);
void graph_result_clear(struct graph_result *res);

/* URL of the invitations endpoint for a graph base URL (owned). */
char *graph_invitations_url(const char *graph_url);

/* JSON batching (GRAPH.md §5): at most this many requests in one $batch. */
#define GRAPH_BATCH_MAX 20

/* The $batch URL for a graph base URL (owned). */
char *graph_batch_url(const char *graph_url);
/* A $batch body with one POST /invitations per claim; item ids are "1".."n",
 * each with the claim's client_request_id (when set) in its headers. */
int graph_batch_body(struct store_claim *const *claims, size_t n, char **ret_body, size_t *ret_len);

/* Read a $batch answer for n items into results[0..n) (each as
 * graph_classify would read a single answer; an item missing from the
 * answer is TRANSIENT). Returns 0; GRAPH_BATCH_REFUSED when the service
 * does not take /invitations in a batch (the envelope is a 4xx, or every
 * item got the same 4xx): results untouched; GRAPH_BATCH_WHOLE when the
 * envelope itself is an error (429, 5xx, transport): classify resp once
 * for all items; or -ENOMEM. */
#define GRAPH_BATCH_REFUSED 1
#define GRAPH_BATCH_WHOLE 2
int graph_batch_classify(const struct http_response *resp, size_t n, struct graph_result *results);

/* ---- the directory (GRAPH.md §6): lookups, group members, acceptance ----
 * Every string in a graph_user and a graph_dir_result is valid UTF-8 (what
 * Graph sent, invalid bytes as U+FFFD), owned by the struct. */

/* A user as a directory read returns it (strings owned, valid UTF-8). */
struct graph_user {
	char *id;
	char *user_type;           /* "Member", "Guest", or what Graph said; NULL: absent */
	char *mail;
	char *external_state;      /* externalUserState: "PendingAcceptance", "Accepted", NULL */
	uint64_t state_changed_ms; /* externalUserStateChangeDateTime, 0: null/absent/unreadable */
};

enum graph_dir_outcome {
	GRAPH_DIR_OK,        /* lookup 200 (found or not); add 204 or "already a member" 400; read 200 */
	GRAPH_DIR_NOT_FOUND, /* 404 Request_ResourceNotFound: not replicated yet (add; read by id) */
	GRAPH_DIR_DENIED,    /* 403 Authorization_RequestDenied (or ErrorAccessDenied): the app lacks the permission */
	GRAPH_DIR_FAILED,    /* any other 4xx: refused for good (a group that refuses guests, a bad id) */
	GRAPH_DIR_TRANSIENT, /* 408, 5xx without Retry-After, timeouts, resets, no answer */
	GRAPH_DIR_THROTTLED, /* 429, or 503 with Retry-After */
	GRAPH_DIR_AUTH,      /* 401 */
};

/* error_code is set (never empty) for every outcome but OK, and NULL for
 * OK (an "already a member" 400 is OK with http_status 400). A 2xx that
 * cannot be read (not JSON, no value list, no user id) is TRANSIENT with
 * error_code "BadResponse": a read has no side effect, so another try is
 * safe, while "not found" could invite an address twice (SPEC R5). */
struct graph_dir_result {
	enum graph_dir_outcome outcome;
	long http_status;                              /* 0: no HTTP answer */
	char *error_code, *error_message, *request_id; /* as struct graph_result's */
	uint64_t retry_after_ms;
	bool has_retry_after;
	enum graph_throttle_scope throttle_scope; /* THROTTLED only */
	bool found;                               /* lookup / read: a user came back */
	struct graph_user user;                   /* when found */
};
void graph_dir_result_clear(struct graph_dir_result *r);

/* GET {graph}/v1.0/users?$filter=...&$select=id,userType,mail,externalUserState,externalUserStateChangeDateTime
 * with GRAPH.md §6's filter for email (quotes doubled, the query
 * percent-encoded: everything but unreserved characters; spaces as %20).
 * Owned, NULL on OOM. */
char *graph_lookup_url(const char *graph_url, const char *email);
/* A lookup's answer. Several users: a Guest wins over a Member (the lead
 * treats a found guest as "the invitation made it"), else the first.
 * Strings in *ret owned (graph_dir_result_clear). 0 or -ENOMEM (*ret
 * then cleared). */
int graph_lookup_classify(const struct http_response *resp, struct graph_dir_result *ret);

/* POST {graph}/v1.0/groups/{group_id}/members/$ref (owned) and its body
 * {"@odata.id":"{graph}/v1.0/directoryObjects/{user_id}"} ({graph} the
 * graph_url given, without a trailing slash). Ids percent-encoded (a GUID
 * is unchanged). *ret_body owned by caller; 0 or -ENOMEM. */
char *graph_group_members_url(const char *graph_url, const char *group_id);
int graph_group_add_body(const char *graph_url, const char *user_id, char **ret_body, size_t *ret_len);
/* 204 -> OK; 400 whose message says the reference already exists -> OK
 * (GRAPH.md §6: match on "already exist", case-insensitive); 404 ->
 * NOT_FOUND; 403 Authorization_RequestDenied -> DENIED; other 4xx -> FAILED
 * with Graph's code/message; 429 etc. as the invitations' rules. */
int graph_group_add_classify(const struct http_response *resp, struct graph_dir_result *ret);

/* Acceptance tracking: a $batch (POST {graph}/v1.0/$batch, graph_batch_url)
 * of n (1..GRAPH_BATCH_MAX) GET users/{id}?$select=id,userType,externalUserState,externalUserStateChangeDateTime
 * items, ids "1".."n". user_ids borrowed; *ret_body owned by caller.
 * 0, -EINVAL (n out of range), or -ENOMEM. */
int graph_track_batch_body(const char *const *user_ids, size_t n, char **ret_body, size_t *ret_len);
/* Read its answer into results[0..n): each item as a single GET by id
 * (200 -> OK with found and user; 404 -> NOT_FOUND; 403 -> DENIED; 429
 * item -> THROTTLED with the item's Retry-After header ...; an item missing
 * -> TRANSIENT). Returns 0, GRAPH_BATCH_WHOLE when the envelope itself is
 * an error (then the caller classifies resp once for all with
 * graph_read_classify), or -ENOMEM. results are set (to be cleared) only
 * when 0 is returned. */
int graph_track_batch_classify(const struct http_response *resp, size_t n, struct graph_dir_result *results);
/* A single GET /users/{id} answer (also used for a $batch's failed envelope). */
int graph_read_classify(const struct http_response *resp, struct graph_dir_result *ret);

/* ---- sendMail (GRAPH.md §7): our own invitation mail through Graph ---- */

/* POST {graph}/v1.0/users/{sender, percent-encoded}/sendMail (owned; NULL on OOM). */
char *graph_sendmail_url(const char *graph_url, const char *sender);
/* GRAPH.md §7's body (strings borrowed, NULL is "", made valid UTF-8):
 * {"message":{"subject":..,"body":{"contentType":"Text","content":..},
 * "toRecipients":[{"emailAddress":{"address":..,"name":..}}]},"saveToSentItems":false}
 * ("name" left out when to_name is NULL or ""). *ret owned; 0 or -ENOMEM. */
int graph_sendmail_body(const char *subject, const char *body, const char *to_email,
			const char *to_name, char **ret, size_t *ret_len);
/* 202 (any 2xx) -> OK; 429, and 503 with Retry-After -> THROTTLED with
 * Retry-After and the throttle scope; 401 -> AUTH; 403 (no Mail.Send, or
 * an application access policy that leaves the mailbox out) -> DENIED;
 * other 4xx (404 ErrorInvalidUser included) -> FAILED with Graph's code
 * and message; 408, 5xx, transport errors -> TRANSIENT. Strings owned
 * (graph_dir_result_clear). 0 or -ENOMEM. */
int graph_sendmail_classify(const struct http_response *resp, struct graph_dir_result *ret);
