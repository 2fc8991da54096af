/* SPDX-License-Identifier: MIT */
#include "delay.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>


uint64_t delay_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sift_up(struct delay_entry *h, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (h[p].due_us <= h[i].due_us)
			break;
		struct delay_entry t = h[p];
		h[p] = h[i];
		h[i] = t;
		i = p;
	}
}

static void sift_down(struct delay_entry *h, size_t len, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < len && h[l].due_us < h[m].due_us)
			m = l;
		if (r < len && h[r].due_us < h[m].due_us)
			m = r;
		if (m == i)
			return;
		struct delay_entry t = h[m];
		h[m] = h[i];
		h[i] = t;
		i = m;
	}
}

/* Connections come back late: the timer thread wakes late (timer slack, a
 * virtual CPU's scheduling) and MHD's thread takes the resumed connection up
 * a little later still. delay_note_late() tells by how much, and the alarm
 * is set that much early (a moving average), so that answers go out at
 * their due time on average, not a fraction of a millisecond after it. */
#define EARLY_MAX_US 2000

static void *run(void *arg)
{
	struct delay *d = arg;
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	pthread_mutex_lock(&d->lock);
	while (!d->stopping) {
		uint64_t now = delay_now_us();
		uint64_t early = d->early_us > 0 ? (uint64_t)d->early_us : 0;
		while (d->len > 0 && d->heap[0].due_us <= now + early) {
			MHD_resume_connection(d->heap[0].conn);
			d->heap[0] = d->heap[--d->len];
			sift_down(d->heap, d->len, 0);
		}
		if (d->len == 0) {
			pthread_cond_wait(&d->cond, &d->lock);
			continue;
		}
		uint64_t due = d->heap[0].due_us > early ? d->heap[0].due_us - early : 0;
		struct timespec ts = {.tv_sec = (time_t)(due / 1000000u),
				      .tv_nsec = (long)(due % 1000000u) * 1000L};
		pthread_cond_timedwait(&d->cond, &d->lock, &ts);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

void delay_note_late(struct delay *d, int64_t late_us)
{
	pthread_mutex_lock(&d->lock);
	/* early + late is what the alarm should have been early by */
	int64_t want = d->early_us + late_us;
	if (want < 0)
		want = 0;
	if (want > EARLY_MAX_US)
		want = EARLY_MAX_US;
	d->early_us = (7 * d->early_us + want) / 8;
	pthread_mutex_unlock(&d->lock);
}

int delay_init(struct delay *d)
{
	pthread_condattr_t attr;
	int r;

	memset(d, 0, sizeof(*d));
	r = pthread_mutex_init(&d->lock, NULL);
	if (r)
		return -r;
	r = pthread_condattr_init(&attr);
	if (r)
		goto out_mutex;
	r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (!r)
		r = pthread_cond_init(&d->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (r)
		goto out_mutex;
	r = pthread_create(&d->thread, NULL, run, d);
	if (r) {
		pthread_cond_destroy(&d->cond);
		goto out_mutex;
	}
	d->running = true;
	d->initialized = true;
	return 0;
out_mutex:
	pthread_mutex_destroy(&d->lock);
	memset(d, 0, sizeof(*d));
	return -r;
}

int delay_suspend_until(struct delay *d, struct MHD_Connection *conn, uint64_t due_us)
{
	int r = 0;
	pthread_mutex_lock(&d->lock);
	if (d->stopping) {
		r = -ECANCELED;
		goto out;
	}
	if (d->len == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 256;
		struct delay_entry *h = realloc(d->heap, cap * sizeof(*h));
		if (!h) {
			r = -ENOMEM;
			goto out;
		}
		d->heap = h;
		d->cap = cap;
	}
	/* Suspend under the lock, so the timer cannot resume it first. */
	MHD_suspend_connection(conn);
	d->heap[d->len] = (struct delay_entry){.due_us = due_us, .conn = conn};
	sift_up(d->heap, d->len++);
	if (d->heap[0].conn == conn)
		pthread_cond_signal(&d->cond);
out:
	pthread_mutex_unlock(&d->lock);
	return r;
}

void delay_stop(struct delay *d)
{
	if (!d->running)
		return;
	pthread_mutex_lock(&d->lock);
	d->stopping = true;
	for (size_t i = 0; i < d->len; i++)
		MHD_resume_connection(d->heap[i].conn);
	d->len = 0;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	d->running = false;
}

void delay_finish(struct delay *d)
{
	delay_stop(d);
	if (d->initialized) {
		pthread_cond_destroy(&d->cond);
		pthread_mutex_destroy(&d->lock);
	}
	free(d->heap);
	memset(d, 0, sizeof(*d));
}

size_t delay_count(struct delay *d)
{
	pthread_mutex_lock(&d->lock);
	size_t n = d->len;
	pthread_mutex_unlock(&d->lock);
	return n;
}
