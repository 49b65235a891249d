// SPDX-License-Identifier: GPL-2.0
/*
 * LD_PRELOAD for the tests: strdup() of the string in $NOMEM_STRDUP fails
 * with ENOMEM, as it would without memory; every other copy works.  Lets
 * a test fail vdiskctl at one chosen allocation (test_input_01: the ADD
 * reply's snapshot name, after the kernel attached).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

char *strdup(const char *s)
{
	const char *fail = getenv("NOMEM_STRDUP");
	size_t len = strlen(s) + 1;
	char *copy;

	if (fail && !strcmp(s, fail)) {
		errno = ENOMEM;
		return NULL;
	}
	copy = malloc(len);
	return copy ? memcpy(copy, s, len) : NULL;
}
