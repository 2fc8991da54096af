/* SPDX-License-Identifier: MIT */
/*
 * proto: the framing of the control socket (docs/protocol.md).
 * A frame is a 4-byte big-endian length followed by that many bytes.
 * Requests and replies are JSON objects in one frame each; uploads follow
 * their request as data frames, ended by an empty frame.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PROTO_MAX_FRAME (1u << 20) /* bytes of payload in one frame */
#define PROTO_HEADER 4u

/* Exit codes of SPEC §3 (sysexits). */
enum proto_exit {
	EXIT_DONE = 0,
	EXIT_JOB_FAILURES = 1,
	EXIT_USAGE = 64,
	EXIT_DATAERR = 65,
	EXIT_NOINPUT = 66,
	EXIT_UNAVAILABLE = 69,
	EXIT_TEMPFAIL = 75,
	EXIT_NOPERM = 77,
	EXIT_CONFIG = 78,
};

/* Error codes carried in {"ok":false,"error":{"code":...}} replies. */
#define PROTO_ERR_USAGE "usage"                     /* malformed request, unknown op or argument */
#define PROTO_ERR_NOT_FOUND "not_found"             /* no such job */
#define PROTO_ERR_INVALID_INPUT "invalid_input"     /* the uploaded file failed validation */
#define PROTO_ERR_PERMISSION "permission_denied"    /* peer uid not allowed */
#define PROTO_ERR_TEMPORARY "temporary"             /* busy, shutting down, store locked: try again */
#define PROTO_ERR_INTERNAL "internal"               /* a fault in the daemon; see its log */
#define PROTO_ERR_CONFIG "config"                   /* reload: the configuration is not valid */

/* Map an error code string to the exit code invitectl uses. */
int proto_error_exit_code(const char *code);

/* Write a frame header for len bytes of payload. */
void proto_put_header(uint8_t out[PROTO_HEADER], uint32_t len);

/* Append one whole frame (header + payload) to b. 0, -EMSGSIZE or -ENOMEM. */
int proto_frame_append(struct buf *b, const void *payload, size_t len);

/*
 * Incremental decoder: feed bytes as they arrive, then take whole frames.
 * proto_decoder_next() returns 1 and sets *ret_payload and *ret_len (borrowed,
 * valid until the next feed/next/finish call) when a frame is complete,
 * 0 when more bytes are needed, -EMSGSIZE when the announced length exceeds
 * max (the connection must then be closed).
 */
struct proto_decoder {
	struct buf in;
	size_t consumed; /* bytes of in already handed out */
	uint32_t max;
};

void proto_decoder_init(struct proto_decoder *d, uint32_t max);
void proto_decoder_finish(struct proto_decoder *d);
int proto_decoder_feed(struct proto_decoder *d, const void *data, size_t len);
int proto_decoder_next(struct proto_decoder *d, const char **ret_payload, size_t *ret_len);
/* Bytes fed but not yet returned as frames. */
size_t proto_decoder_pending(const struct proto_decoder *d);
/* Make room for exactly size bytes of input (at least those held): no
 * doubling for a large frame, and the room given back after it.
 * 0 or -ENOMEM (the decoder is unchanged then). */
int proto_decoder_resize(struct proto_decoder *d, size_t size);
/* Drop n bytes of the input (at most those held), as if handed out. */
void proto_decoder_skip(struct proto_decoder *d, size_t n);
/* Header and payload bytes of the frame at the head, once its header has
 * arrived (0 before, and for a length over max). */
size_t proto_decoder_frame_size(const struct proto_decoder *d);
