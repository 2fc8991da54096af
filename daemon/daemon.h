/* SPDX-License-Identifier: MIT */
/*
 * daemon: the objects one running invited holds, wired by main.c and handed
 * to the request handlers (ops.c). Each member is owned by its module.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"

struct auth;
struct hook;
struct ctl;
struct http;
struct store;
struct tenant;
struct waiter;

struct daemon {
	uv_loop_t *loop;
	struct config config;
	struct store *store;
	struct http *http;
	struct auth *auth;
	struct tenant *tenant; /* one today; SPEC "planned next": several, by name */
	struct ctl *ctl;
	struct hook *hook; /* NULL unless [daemon] on_complete is set */
	uint64_t started_mono_ms;
	struct waiter *waiters; /* `wait` requests not answered yet (ops.c) */
	bool stopping;
};
