/* SPDX-License-Identifier: MIT */
/*
 * upload: an uploaded file's way into the store. The control socket pushes
 * the file's bytes as they arrive; a worker thread parses them (csv) and
 * inserts every row (store_import) in one transaction that commits only if
 * the whole file is valid. Memory stays bounded: when the worker falls
 * behind, upload_push() asks the caller to stop reading until resume_fn.
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
