/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The qcow2 format core, as vdiskctl uses it: only to read headers.  Kept
 * apart from vdiskctl.h so that the core's kernel-style names (u64, BIT)
 * stay out of the files that talk netlink.
 */
#ifndef VDISKCTL_IMAGE_H
#define VDISKCTL_IMAGE_H

#include "q2u.h"

/* A qcow2 header parsed over a descriptor the caller keeps open. */
struct q2_header {
	struct q2u_file file;	/* the core keeps a pointer to it */
	struct q2_image *img;
};

/*
 * Parse the header, extensions and snapshot table of the image open on
 * @fd (Q2_OPEN_HEADER_ONLY: no L1 table, so hostile sizes cost nothing).
 * Returns 0, or -errno with the core's one-line reason in @err.
 */
int q2_header_open(struct q2_header *h, int fd, char *err, size_t len);
void q2_header_close(struct q2_header *h);

#endif
