/* SPDX-License-Identifier: MIT */
/*
 * fuzz-proto: the control socket's frame decoder (common/proto.c) and the
 * daemon's first look at a request (ctl.c: json_loadb with duplicate keys
 * refused, an object required, "op" a string).
 *
 * Input: byte 0 is a chunk size, the rest the byte stream a client sends.
 * The stream is decoded twice, fed whole and fed in chunks the way ctl.c
 * does (taking frames after each feed); both must give the same frames and
 * the same verdict, each frame must re-encode to the bytes it came from, and
 * the decoder must never hand out more than it was fed or more than max.
 */
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "proto.h"

#define SMALL_MAX 4096u

struct decoded {
	struct buf frames; /* each frame: 4-byte length + payload, re-encoded */
	size_t n;
	int verdict; /* 0 or -EMSGSIZE */
};

static void request_check(const char *payload, size_t len)
{
	json_error_t err;
	json_t *req = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &err);
	if (json_is_object(req)) {
		json_t *op = json_object_get(req, "op");
		if (json_is_string(op))
			FUZZ_ASSERT(json_string_value(op) != NULL);
		/* what ops.c reads: ids, strings, booleans */
		json_t *id = json_object_get(req, "id");
		if (json_is_integer(id))
			(void)json_integer_value(id);
		char *again = json_dumps(req, JSON_COMPACT);
		FUZZ_ASSERT(again != NULL);
		json_t *back = json_loads(again, JSON_REJECT_DUPLICATES, &err);
		FUZZ_ASSERT(back && json_equal(req, back));
		json_decref(back);
		free(again);
	}
	json_decref(req);
}

static int take(struct proto_decoder *d, struct decoded *out, bool check_json)
{
	for (;;) {
		const char *p;
		size_t len;
		size_t before = proto_decoder_pending(d);
		int r = proto_decoder_next(d, &p, &len);
		if (r < 0) {
			FUZZ_ASSERT(r == -EMSGSIZE);
			return r;
		}
		if (r == 0)
			return 0;
		FUZZ_ASSERT(r == 1);
		FUZZ_ASSERT(len <= d->max);
		FUZZ_ASSERT(PROTO_HEADER + len <= before);
		FUZZ_ASSERT(proto_decoder_pending(d) == before - PROTO_HEADER - len);
		FUZZ_ASSERT(proto_frame_append(&out->frames, p, len) == 0);
		out->n++;
		if (check_json)
			request_check(p, len);
	}
}

static void decode(struct decoded *out, const uint8_t *data, size_t size, size_t step, uint32_t max,
                   bool check_json)
{
	struct proto_decoder d;
	proto_decoder_init(&d, max);
	buf_init(&out->frames);
	out->n = 0;
	out->verdict = 0;
	size_t off = 0;
	while (off < size) {
		size_t n = size - off < step ? size - off : step;
		FUZZ_ASSERT(proto_decoder_feed(&d, data + off, n) == 0);
		off += n;
		out->verdict = take(&d, out, check_json);
		if (out->verdict < 0)
			break; /* ctl.c closes the connection */
	}
	proto_decoder_finish(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)data[0] + 1;
	uint32_t max = (data[0] & 0x80) ? SMALL_MAX : PROTO_MAX_FRAME;
	data++;
	size--;

	struct decoded whole, chunked;
	decode(&whole, data, size, size ? size : 1, max, true);
	decode(&chunked, data, size, step, max, false);
	FUZZ_ASSERT(whole.verdict == chunked.verdict);
	FUZZ_ASSERT(whole.n == chunked.n);
	FUZZ_ASSERT(whole.frames.len == chunked.frames.len);
	FUZZ_ASSERT(whole.frames.len <= size);
	/* re-encoded frames are exactly the bytes they were decoded from */
	FUZZ_ASSERT(whole.frames.len == 0 ||
	            memcmp(whole.frames.data, data, whole.frames.len) == 0);
	FUZZ_ASSERT(chunked.frames.len == 0 ||
	            memcmp(chunked.frames.data, whole.frames.data, whole.frames.len) == 0);
	buf_finish(&whole.frames);
	buf_finish(&chunked.frames);

	/* the exit code map takes any string */
	char code[32];
	size_t n = size < sizeof(code) - 1 ? size : sizeof(code) - 1;
	memcpy(code, data, n);
	code[n] = '\0';
	int e = proto_error_exit_code(code);
	FUZZ_ASSERT(e == EXIT_USAGE || e == EXIT_DATAERR || e == EXIT_NOPERM || e == EXIT_TEMPFAIL ||
	            e == EXIT_CONFIG);
	return 0;
}
