/* SPDX-License-Identifier: MIT */
/*
 * delay: answer later without holding a worker thread. The access handler
 * suspends its connection here; one timer thread resumes it when due, and
 * MHD then calls the handler again. Used for --latency-ms and for held
 * ("hung") connections, which are resumed periodically to notice a client
 * that has given up.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct MHD_Connection;

struct delay_entry {
	uint64_t due_us; /* delay_now_us() */
	struct MHD_Connection *conn;
};

struct delay {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	struct delay_entry *heap; /* min-heap on due_us; owned */
	size_t len, cap;
	bool stopping;
	int64_t early_us; /* alarms are set this much before the due time */
	bool running; /* timer thread started and not joined */
	bool initialized; /* lock and cond valid */
};

/* The monotonic clock in microseconds: latency is kept to the microsecond,
 * so that a 20 ms answer takes 20 ms and not up to a millisecond more. */
uint64_t delay_now_us(void);
/* Starts the timer thread. 0 or negative errno. */
int delay_init(struct delay *d);
/* Suspend conn (borrowed; call only from MHD's access handler) and resume it
 * at due_us. 0, -ECANCELED once delay_stop() has begun (the connection is not
 * suspended: answer now), -ENOMEM (likewise). */
int delay_suspend_until(struct delay *d, struct MHD_Connection *conn, uint64_t due_us);
/* A resumed connection was answered late_us after its due time (negative:
 * early); later alarms are moved by a moving average of it. */
void delay_note_late(struct delay *d, int64_t late_us);
/* Resume every suspended connection, refuse new ones, join the thread. Call
 * before MHD_stop_daemon(). */
void delay_stop(struct delay *d);
/* Free everything; accepts a delay that never started. */
void delay_finish(struct delay *d);
/* Connections currently suspended here. */
size_t delay_count(struct delay *d);
