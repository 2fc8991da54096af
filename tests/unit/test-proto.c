/* SPDX-License-Identifier: MIT */
/* Framing: whole frames, frames split at every byte, oversized lengths, exit-code map. */
#include <errno.h>
#include <string.h>

#include "proto.h"
#include "tap.h"

static void test_roundtrip_split(void)
{
	struct buf wire = BUF_INIT;
	const char *msgs[] = {"{\"op\":\"status\"}", "", "abc", "{\"op\":\"jobs\",\"all\":true}"};
	for (size_t i = 0; i < 4; i++)
		proto_frame_append(&wire, msgs[i], strlen(msgs[i]));

	/* feed one byte at a time: every frame comes out whole and in order */
	struct proto_decoder d;
	proto_decoder_init(&d, PROTO_MAX_FRAME);
	size_t got = 0;
	for (size_t i = 0; i < wire.len; i++) {
		proto_decoder_feed(&d, wire.data + i, 1);
		const char *p;
		size_t len;
		int r;
		while ((r = proto_decoder_next(&d, &p, &len)) == 1) {
			ok(got < 4 && len == strlen(msgs[got]) && memcmp(p, msgs[got], len) == 0,
			   "frame %zu intact after byte-wise feeding", got);
			got++;
		}
		if (r < 0)
			ok(0, "unexpected decoder error %d", r);
	}
	is_int(got, 4, "all four frames decoded");
	is_int(proto_decoder_pending(&d), 0, "nothing left over");
	proto_decoder_finish(&d);
	buf_finish(&wire);
}

static void test_oversized(void)
{
	struct proto_decoder d;
	proto_decoder_init(&d, 16);
	uint8_t h[PROTO_HEADER];
	proto_put_header(h, 17);
	proto_decoder_feed(&d, h, sizeof(h));
	const char *p;
	size_t len;
	is_int(proto_decoder_next(&d, &p, &len), -EMSGSIZE, "length above max is refused");
	proto_decoder_finish(&d);

	struct buf b = BUF_INIT;
	static char big[PROTO_MAX_FRAME + 1];
	is_int(proto_frame_append(&b, big, sizeof(big)), -EMSGSIZE, "encoder refuses > 1 MiB");
	is_int(proto_frame_append(&b, big, PROTO_MAX_FRAME), 0, "encoder takes exactly 1 MiB");
	buf_finish(&b);
}

/* What ctl.c uses to bound input: the size of the frame under way, exact
 * room for it, and skipping a frame too large to keep. */
static void test_frame_size_resize_skip(void)
{
	struct proto_decoder d;
	struct buf b = BUF_INIT;
	proto_decoder_init(&d, PROTO_MAX_FRAME);
	is_int(proto_decoder_frame_size(&d), 0, "no header yet: 0");
	uint8_t h[PROTO_HEADER];
	proto_put_header(h, 100000);
	proto_decoder_feed(&d, h, 2);
	is_int(proto_decoder_frame_size(&d), 0, "half a header: 0");
	proto_decoder_feed(&d, h + 2, 2);
	is_int(proto_decoder_frame_size(&d), PROTO_HEADER + 100000, "header + payload once known");
	is_int(proto_decoder_resize(&d, PROTO_HEADER + 100000), 0, "resize");
	ok(d.in.cap == PROTO_HEADER + 100000 + 1, "exactly the frame (and a NUL)");
	char junk[1000] = {0};
	proto_decoder_feed(&d, junk, sizeof(junk));
	proto_decoder_skip(&d, proto_decoder_pending(&d));
	is_int(proto_decoder_pending(&d), 0, "skipped what was held");
	proto_decoder_skip(&d, 5);
	is_int(proto_decoder_pending(&d), 0, "skipping past the end is bounded");
	proto_frame_append(&b, "{}", 2);
	proto_decoder_feed(&d, b.data, b.len);
	const char *p;
	size_t len;
	is_int(proto_decoder_next(&d, &p, &len), 1, "the next frame decodes after a skip");
	ok(len == 2 && memcmp(p, "{}", 2) == 0, "intact");
	is_int(proto_decoder_resize(&d, 0), 0, "given back when empty");
	ok(d.in.data == NULL && d.in.cap == 0, "no buffer held");
	proto_put_header(h, PROTO_MAX_FRAME + 1);
	proto_decoder_feed(&d, h, sizeof(h));
	is_int(proto_decoder_frame_size(&d), 0, "a length over max: 0");
	proto_decoder_finish(&d);
	buf_finish(&b);
}

static void test_exit_codes(void)
{
	static const struct {
		const char *code;
		int exit;
	} cases[] = {
		{PROTO_ERR_USAGE, 64},      {PROTO_ERR_NOT_FOUND, 64},   {PROTO_ERR_INVALID_INPUT, 65},
		{PROTO_ERR_PERMISSION, 77}, {PROTO_ERR_TEMPORARY, 75},   {PROTO_ERR_INTERNAL, 75},
		{"something-new", 75},      {NULL, 75},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		is_int(proto_error_exit_code(cases[i].code), cases[i].exit, "exit code for %s",
		       cases[i].code ? cases[i].code : "(null)");
}

int main(void)
{
	tap_plan_none();
	test_roundtrip_split();
	test_oversized();
	test_exit_codes();
	test_frame_size_resize_skip();
	return tap_done();
}
