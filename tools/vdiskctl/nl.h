/* SPDX-License-Identifier: GPL-2.0 */
/* The one generic netlink path: connect, build a request, collect replies. */
#ifndef VDISKCTL_NL_H
#define VDISKCTL_NL_H

#include <stdint.h>
#include <netlink/netlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <linux/vdisk.h>

struct vnl {
	struct nl_sock *sk;
	int family;
	const char *cmd;	/* for error messages */
	struct nl_msg *req;	/* in flight, to name a rejected attribute */
	char reason[512];	/* why the last request failed */
};

/*
 * Called for every reply or dump message; a negative errno aborts the
 * request with that error once the kernel has finished answering.
 */
typedef int (*vnl_reply_fn)(struct nlattr **tb, uint8_t cmd, void *arg);

/* Connect and resolve the family; prints its own error. */
int vnl_open(struct vnl *nl, const char *cmd);
void vnl_close(struct vnl *nl);

/* A request for @cmd with @flags (NLM_F_DUMP or 0); NULL without memory. */
struct nl_msg *vnl_request(struct vnl *nl, uint8_t cmd, int flags);

/*
 * Send @msg (consumed), feed the replies to @fn, wait for the ACK or the
 * end of the dump.  Returns 0 or a negative errno with nl->reason set.
 */
int vnl_call(struct vnl *nl, struct nl_msg *msg, vnl_reply_fn fn, void *arg);

/* Validate a vdisk message; fills @tb and @cmd.  0 or negative errno. */
int vnl_parse(struct nl_msg *msg, struct nlattr **tb, uint8_t *cmd);

/* "vdiskctl: CMD OBJ: reason" for the last failed request. */
void vnl_perror(const struct vnl *nl, const char *obj);

#endif
