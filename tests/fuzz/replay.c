/* SPDX-License-Identifier: MIT */
/*
 * replay: main() for fuzz targets built without libFuzzer. Runs the target
 * once on every regular file under the directories (or files) given, in
 * name order, and prints TAP: one point per directory. A crash aborts the
 * test (meson counts it failed) with the file's name printed first.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define REPLAY_MAX_INPUT (64u * 1024u * 1024u)

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	struct stat st;
	if (fstat(fileno(f), &st) < 0 || st.st_size < 0 ||
	    (uint64_t)st.st_size > REPLAY_MAX_INPUT) {
		fclose(f);
		return -EFBIG;
	}
	size_t n = (size_t)st.st_size;
	uint8_t *data = malloc(n ? n : 1);
	if (!data || fread(data, 1, n, f) != n) {
		free(data);
		fclose(f);
		return -EIO;
	}
	fclose(f);
	fprintf(stderr, "replay %s (%zu bytes)\n", path, n);
	LLVMFuzzerTestOneInput(data, n);
	free(data);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
	int n = 0, failed = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		int count = 0, bad = 0;
		if (stat(argv[i], &st) < 0) {
			printf("ok %d - %s # SKIP absent\n", ++n, argv[i]);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			struct dirent **names;
			int k = scandir(argv[i], &names, NULL, by_name);
			for (int j = 0; j < k; j++) {
				char path[4096];
				struct stat fst;
				if (names[j]->d_name[0] != '.' &&
				    snprintf(path, sizeof(path), "%s/%s", argv[i],
				             names[j]->d_name) < (int)sizeof(path) &&
				    stat(path, &fst) == 0 && S_ISREG(fst.st_mode)) {
					if (run_file(path) < 0)
						bad++;
					else
						count++;
				}
				free(names[j]);
			}
			free(names);
		} else if (run_file(argv[i]) < 0) {
			bad++;
		} else {
			count++;
		}
		printf("%s %d - %s: %d inputs replayed\n", bad ? "not ok" : "ok", ++n, argv[i],
		       count);
		failed += bad != 0;
	}
	printf("1..%d\n", n);
	return failed ? 1 : 0;
}
