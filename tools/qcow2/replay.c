// SPDX-License-Identifier: GPL-2.0
/*
 * Replay fuzzer inputs through fuzz_image.c's target without libFuzzer
 * (built with gcc and ASan/UBSan), as KTAP: one case per file.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <sys/stat.h>

#include "q2u.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	char **files = NULL;
	size_t nr = 0, i;
	int a;

	for (a = 1; a < argc; a++) {
		struct stat st;
		DIR *d;
		struct dirent *de;

		if (stat(argv[a], &st))
			continue;
		if (!S_ISDIR(st.st_mode)) {
			files = realloc(files, (nr + 1) * sizeof(*files));
			files[nr++] = strdup(argv[a]);
			continue;
		}
		d = opendir(argv[a]);
		while (d && (de = readdir(d))) {
			char *p;

			if (de->d_name[0] == '.' ||
			    !strncmp(de->d_name, "README", 6))
				continue;
			if (asprintf(&p, "%s/%s", argv[a], de->d_name) < 0)
				return 1;
			files = realloc(files, (nr + 1) * sizeof(*files));
			files[nr++] = p;
		}
		if (d)
			closedir(d);
	}
	if (nr)
		qsort(files, nr, sizeof(*files), cmp);
	printf("KTAP version 1\n1..%zu\n", nr);
	for (i = 0; i < nr; i++) {
		FILE *f = fopen(files[i], "rb");
		u8 *buf = NULL;
		size_t len = 0, n;
		u8 tmp[65536];

		while (f && (n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
			buf = realloc(buf, len + n);
			memcpy(buf + len, tmp, n);
			len += n;
		}
		if (f)
			fclose(f);
		LLVMFuzzerTestOneInput(buf ? buf : (u8 *)"", len);
		free(buf);
		printf("ok %zu %s\n", i + 1, strrchr(files[i], '/') ?
		       strrchr(files[i], '/') + 1 : files[i]);
		free(files[i]);
	}
	free(files);
	return 0;
}
