/* SPDX-License-Identifier: MIT */
/*
 * floor: the least a client can spend per single-request invitation on this
 * machine. Plain HTTP/1.1 keep-alive POSTs to the simulator over epoll, one
 * started per timer tick (as the daemon's rate limiter starts them), no
 * library, no database: what is left is the kernel's cost of an exchange on
 * loopback. docs/performance.md compares P4 with it.
 *
 *   floor PORT TOKEN RATE SECONDS     prints one JSON line
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define CONNS 32
#define TIMER_ID 1000u

struct conn {
	int fd;
	int busy;
	size_t len;
	char buf[16384];
};

static double cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec +
	       ru.ru_stime.tv_usec;
}

static double user_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec;
}

/* A whole response in c->buf: headers and Content-Length bytes of body. */
static int complete(struct conn *c)
{
	c->buf[c->len] = '\0';
	const char *end = strstr(c->buf, "\r\n\r\n");
	const char *cl = strcasestr(c->buf, "\r\nContent-Length:");
	return end && cl && cl < end && (size_t)(end + 4 - c->buf) + strtoul(cl + 17, NULL, 10) <= c->len;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: floor PORT TOKEN RATE SECONDS\n");
		return 64;
	}
	int port = atoi(argv[1]), rate = atoi(argv[3]), secs = atoi(argv[4]);
	const char *token = argv[2];
	static struct conn conns[CONNS];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || rate <= 0 || rate > 100000 || secs <= 0 || secs > 600)
		return 64;
	for (unsigned i = 0; i < CONNS; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		int one = 1;
		conns[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (conns[i].fd < 0 || connect(conns[i].fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			perror("floor: connect");
			return 69;
		}
		setsockopt(conns[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
		epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
	}
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	struct itimerspec its = {.it_interval = {0, 1000000000L / rate}, .it_value = {0, 1000000L}};
	struct epoll_event tev = {.events = EPOLLIN, .data.u32 = TIMER_ID};
	if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev) < 0)
		return 71;

	long done = 0, seq = 0, skipped = 0;
	double c0 = cpu_us(), u0 = user_us();
	time_t end = time(NULL) + secs;
	while (time(NULL) < end) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, 100);
		for (int k = 0; k < n; k++) {
			unsigned id = evs[k].data.u32;
			if (id != TIMER_ID) {
				struct conn *c = &conns[id];
				ssize_t m = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len - 1, 0);
				if (m <= 0) {
					fprintf(stderr, "floor: the simulator closed a connection\n");
					return 69;
				}
				c->len += (size_t)m;
				if (complete(c)) {
					c->busy = 0;
					done++;
				}
				continue;
			}
			uint64_t ticks;
			if (read(tfd, &ticks, sizeof(ticks)) != sizeof(ticks))
				continue;
			for (uint64_t t = 0; t < ticks; t++) {
				unsigned i = 0;
				while (i < CONNS && conns[i].busy)
					i++;
				if (i == CONNS) {
					skipped++;
					break;
				}
				char body[256], req[4096];
				int bl = snprintf(body, sizeof(body),
						  "{\"invitedUserEmailAddress\":\"floor%ld@tenant-%ld.example\","
						  "\"inviteRedirectUrl\":\"https://myapplications.microsoft.com\","
						  "\"sendInvitationMessage\":false}",
						  seq, seq % 17);
				seq++;
				int l = snprintf(req, sizeof(req),
						 "POST /v1.0/invitations HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
						 "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
						 "Accept: application/json\r\nContent-Length: %d\r\n\r\n%s",
						 port, token, bl, body);
				if (l <= 0 || l >= (int)sizeof(req) || send(conns[i].fd, req, (size_t)l, 0) != l) {
					perror("floor: send");
					return 69;
				}
				conns[i].busy = 1;
				conns[i].len = 0;
			}
		}
	}
	double cpu = cpu_us() - c0, user = user_us() - u0, per = done ? (double)done : 1.0;
	printf("{\"bench\": \"floor\", \"rate\": %d, \"requests\": %ld, \"achieved_per_s\": %ld, "
	       "\"ticks_without_a_free_connection\": %ld, \"cpu_us_per_request\": %.1f, "
	       "\"user_us\": %.1f, \"sys_us\": %.1f}\n",
	       rate, done, done / secs, skipped, done ? cpu / (double)done : 0.0, user / per,
	       (cpu - user) / per);
	return 0;
}
