// SPDX-License-Identifier: GPL-2.0
/* q2info [--json] IMAGE: describe a qcow2 image (see info.c). */
#include "q2u.h"

int main(int argc, char **argv)
{
	bool json = false;
	int i = 1;

	if (argc > 1 && !strcmp(argv[1], "--json")) {
		json = true;
		i++;
	}
	if (argc != i + 1) {
		fprintf(stderr, "usage: q2info [--json] IMAGE\n");
		return 2;
	}
	return q2_print_info(stdout, argv[i], json) ? 1 : 0;
}
