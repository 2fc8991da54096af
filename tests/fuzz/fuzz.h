/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h: what every fuzz target defines. With -Dfuzz=true (clang) the
 * targets link libFuzzer; otherwise they link replay.c, which runs the same
 * entry point over every file of the directories given on the command line
 * (the seed corpus and the regression inputs), so the default suite replays
 * every crash ever found.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant: print why and abort, so libFuzzer keeps the input. */
#define FUZZ_ASSERT(cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fuzz_fail(__FILE__, __LINE__, #cond);                                      \
		}                                                                                  \
	} while (0)

__attribute__((noreturn)) void fuzz_fail(const char *file, int line, const char *what);
