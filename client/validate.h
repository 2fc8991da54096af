/* SPDX-License-Identifier: MIT */
/*
 * validate: invitectl checks a guest list itself (SPEC §3: no daemon needed),
 * by the rules of the daemon's import: the same reader (common/csv.c), the
 * same address comparison for duplicates, the same size and row limits.
 */
#pragma once

#include <jansson.h>
#include <stdint.h>

/* What invitectl uses when the daemon cannot be asked (its defaults). */
#define VALIDATE_DEFAULT_MAX_UPLOAD_BYTES (64ull << 20)
#define VALIDATE_DEFAULT_MAX_ROWS 1000000ull

struct validate_limits {
	uint64_t max_upload_bytes;
	uint64_t max_rows;
};

/* Read fd (borrowed) to its end and check it. On success (0) *ret is a new
 * object {"valid":bool,"rows":int,"errors":[{"line":int,"message":str}],
 * "error_count":int}, as the daemon's validate reply less "ok". When the
 * file cannot be read, 0 with *ret_read_err set to the errno (it is set
 * only then) and *ret untouched. -ENOMEM otherwise. */
int validate_check_fd(int fd, const struct validate_limits *limits, json_t **ret,
                      int *ret_read_err);
