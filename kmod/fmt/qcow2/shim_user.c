// SPDX-License-Identifier: GPL-2.0
/*
 * Warnings for the qcow2 core in userspace.  The decompressors are in
 * shim_user_decomp.c, so that a program that never reads a compressed
 * cluster (vdiskctl) need not load zlib and libzstd.
 */
#include <time.h>

#include "shim.h"

bool q2_shim_quiet;
unsigned long q2_shim_warnings;

void q2_shim_warn(const char *fmt, ...)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static time_t window;
	static unsigned int burst;
	va_list ap;
	time_t now;

	pthread_mutex_lock(&lock);
	q2_shim_warnings++;
	now = time(NULL);
	if (now != window) {
		window = now;
		burst = 0;
	}
	if (!q2_shim_quiet && burst++ < 10) {
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&lock);
}
