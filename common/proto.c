/* SPDX-License-Identifier: MIT */
#include "proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int proto_error_exit_code(const char *code)
{
	static const struct {
		const char *code;
		int exit;
	} map[] = {
		{PROTO_ERR_USAGE, EXIT_USAGE},
		{PROTO_ERR_NOT_FOUND, EXIT_USAGE},
		{PROTO_ERR_INVALID_INPUT, EXIT_DATAERR},
		{PROTO_ERR_PERMISSION, EXIT_NOPERM},
		{PROTO_ERR_TEMPORARY, EXIT_TEMPFAIL},
		{PROTO_ERR_CONFIG, EXIT_CONFIG},
	};
	if (code)
		for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
			if (strcmp(code, map[i].code) == 0)
				return map[i].exit;
	return EXIT_TEMPFAIL;
}

void proto_put_header(uint8_t out[PROTO_HEADER], uint32_t len)
{
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
}

int proto_frame_append(struct buf *b, const void *payload, size_t len)
{
	if (len > PROTO_MAX_FRAME)
		return -EMSGSIZE;
	uint8_t h[PROTO_HEADER];
	proto_put_header(h, (uint32_t)len);
	int r = buf_append(b, h, sizeof(h));
	if (r < 0)
		return r;
	return buf_append(b, payload, len);
}

void proto_decoder_init(struct proto_decoder *d, uint32_t max)
{
	buf_init(&d->in);
	d->consumed = 0;
	d->max = max;
}

void proto_decoder_finish(struct proto_decoder *d)
{
	buf_finish(&d->in);
	d->consumed = 0;
}

int proto_decoder_feed(struct proto_decoder *d, const void *data, size_t len)
{
	if (d->consumed) {
		buf_consume(&d->in, d->consumed);
		d->consumed = 0;
	}
	return buf_append(&d->in, data, len);
}

int proto_decoder_resize(struct proto_decoder *d, size_t size)
{
	if (d->consumed) {
		buf_consume(&d->in, d->consumed);
		d->consumed = 0;
	}
	if (size < d->in.len)
		size = d->in.len;
	if (size == 0) {
		buf_finish(&d->in);
		return 0;
	}
	char *n = realloc(d->in.data, size + 1); /* + buf's NUL */
	if (!n)
		return -ENOMEM;
	d->in.data = n;
	d->in.cap = size + 1;
	return 0;
}

int proto_decoder_next(struct proto_decoder *d, const char **ret_payload, size_t *ret_len)
{
	size_t avail = d->in.len - d->consumed;
	if (avail < PROTO_HEADER)
		return 0;
	const uint8_t *p = (const uint8_t *)d->in.data + d->consumed;
	uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if (len > d->max)
		return -EMSGSIZE;
	if (avail - PROTO_HEADER < len)
		return 0;
	*ret_payload = (const char *)p + PROTO_HEADER;
	*ret_len = len;
	d->consumed += PROTO_HEADER + len;
	return 1;
}

size_t proto_decoder_pending(const struct proto_decoder *d)
{
	return d->in.len - d->consumed;
}

size_t proto_decoder_frame_size(const struct proto_decoder *d)
{
	if (d->in.len - d->consumed < PROTO_HEADER)
		return 0;
	const uint8_t *p = (const uint8_t *)d->in.data + d->consumed;
	uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return len > d->max ? 0 : PROTO_HEADER + (size_t)len;
}

void proto_decoder_skip(struct proto_decoder *d, size_t n)
{
	size_t have = d->in.len - d->consumed;
	d->consumed += n < have ? n : have;
}
