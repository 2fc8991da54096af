/* SPDX-License-Identifier: MIT */
/*
 * upload: an uploaded file's way into the store. The control socket pushes
 * the file's bytes as they arrive; the loop writes them to an unnamed spool
 * file with short uv_fs_write requests (a client that stops sending holds
 * no thread). After the empty frame a worker thread parses the spool (csv)
 * and, for `submit`, inserts every row (store_import) in one transaction
 * that commits only if the whole file is valid; `validate` parses without
 * any transaction. At most 2 imports run at once; the others queue.
 * Memory stays bounded: past 256 KiB not yet written for one upload, or
 * 8 MiB for all, upload_push() asks the caller to stop reading until
 * resume_fn. Loop thread only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "store.h"

#define UPLOAD_MAX_ERRORS 50

struct upload_error {
	unsigned line;
	char *message;
};

struct upload_result {
	int status;     /* 0: valid (and stored unless validate_only); 1: invalid; <0 errno */
	char *failure;  /* status < 0: what went wrong */
	int64_t job_id; /* stored job, 0 otherwise */
	size_t rows;
	size_t error_count;
	size_t n_errors; /* the first UPLOAD_MAX_ERRORS */
	struct upload_error errors[UPLOAD_MAX_ERRORS];
	bool has_message; /* some row carries a customized message */
	char sha256[65];  /* of the uploaded bytes, hex; "" if not computed */
};

struct upload_spec {
	const char *db_path;
	struct store_import_spec job; /* strings borrowed until done/abort */
	bool validate_only;
	uint64_t max_bytes;
	uint64_t max_rows;
};

/* res borrowed: valid during the call. */
typedef void (*upload_done_fn)(void *userdata, const struct upload_result *res);
typedef void (*upload_resume_fn)(void *userdata);

struct upload;

/* spec's strings are copied. */
int upload_create(uv_loop_t *loop, const struct upload_spec *spec, upload_done_fn done,
		  upload_resume_fn resume, void *userdata, struct upload **ret);
/* Bytes of the file (copied). Returns 1 when the caller should stop reading
 * until resume_fn, 0 to go on, -ENOMEM. */
int upload_push(struct upload *u, const void *data, size_t len);
/* The whole file has arrived: done_fn follows once it is checked/stored,
 * and the upload frees itself after. */
void upload_end(struct upload *u);
/* The client went away: nothing is stored, done_fn is not called, the
 * upload frees itself once the worker has stopped. */
void upload_abort(struct upload *u);
