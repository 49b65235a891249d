// SPDX-License-Identifier: GPL-2.0
/*
 * Generic netlink plumbing, shared by every command: a command only builds
 * its attributes and says what to do with each reply.
 *
 * libnl 3.7 has no extended-ACK support of its own, so the error and
 * done handlers pick NLMSGERR_ATTR_MSG out of the TLVs themselves.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "nl.h"
#include "vdiskctl.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/*
 * Room for the largest request the ABI allows: a top image and a full
 * backing chain, each with a maximal path.
 */
#define VNL_REQ_SIZE	((VDISK_BACKING_MAX + 2) * (VDISK_PATH_MAX + 64))

static struct nla_policy reply_policy[VDISK_ATTR_MAX + 1] = {
	[VDISK_ATTR_INDEX]	 = { .type = NLA_U32 },
	[VDISK_ATTR_NAME]	 = { .type = NLA_STRING, .maxlen = VDISK_NAME_MAX },
	[VDISK_ATTR_DISK_NAME]	 = { .type = NLA_STRING, .maxlen = 32 },
	[VDISK_ATTR_PATH]	 = { .type = NLA_STRING, .maxlen = VDISK_PATH_MAX },
	[VDISK_ATTR_FORMAT]	 = { .type = NLA_U32 },
	[VDISK_ATTR_OFFSET]	 = { .type = NLA_U64 },
	[VDISK_ATTR_SIZELIMIT]	 = { .type = NLA_U64 },
	[VDISK_ATTR_SIZE]	 = { .type = NLA_U64 },
	[VDISK_ATTR_FLAGS]	 = { .type = NLA_U32 },
	[VDISK_ATTR_CACHE]	 = { .type = NLA_U32 },
	[VDISK_ATTR_SECTOR_SIZE] = { .type = NLA_U32 },
	[VDISK_ATTR_MAJOR]	 = { .type = NLA_U32 },
	[VDISK_ATTR_MINOR]	 = { .type = NLA_U32 },
	[VDISK_ATTR_OPENERS]	 = { .type = NLA_U32 },
	[VDISK_ATTR_BACKING]	 = { .type = NLA_NESTED },
	[VDISK_ATTR_SNAPSHOT]	 = { .type = NLA_STRING },
	[VDISK_ATTR_CACHE_SIZE]	 = { .type = NLA_U64 },
};

/* For errors that point at an attribute without saying anything. */
static const char *const attr_names[VDISK_ATTR_MAX + 1] = {
	[VDISK_ATTR_INDEX] = "INDEX", [VDISK_ATTR_NAME] = "NAME",
	[VDISK_ATTR_DISK_NAME] = "DISK_NAME", [VDISK_ATTR_FD] = "FD",
	[VDISK_ATTR_PATH] = "PATH", [VDISK_ATTR_FORMAT] = "FORMAT",
	[VDISK_ATTR_OFFSET] = "OFFSET", [VDISK_ATTR_SIZELIMIT] = "SIZELIMIT",
	[VDISK_ATTR_SIZE] = "SIZE", [VDISK_ATTR_FLAGS] = "FLAGS",
	[VDISK_ATTR_CACHE] = "CACHE", [VDISK_ATTR_SECTOR_SIZE] = "SECTOR_SIZE",
	[VDISK_ATTR_DEL_FLAGS] = "DEL_FLAGS", [VDISK_ATTR_SET_FLAGS] = "SET_FLAGS",
	[VDISK_ATTR_BACKING] = "BACKING", [VDISK_ATTR_SNAPSHOT] = "SNAPSHOT",
	[VDISK_ATTR_CACHE_SIZE] = "CACHE_SIZE",
};

static const char *attr_name(unsigned int type, char *buf, size_t len)
{
	if (type <= VDISK_ATTR_MAX && attr_names[type])
		return attr_names[type];
	snprintf(buf, len, "%u", type);
	return buf;
}

int vnl_open(struct vnl *nl, const char *cmd)
{
	int one = 1;
	int ret;

	memset(nl, 0, sizeof(*nl));
	nl->cmd = cmd;
	nl->sk = nl_socket_alloc();
	if (!nl->sk) {
		errf(cmd, NULL, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	ret = genl_connect(nl->sk);
	if (ret < 0) {
		errf(cmd, NULL, "cannot open a generic netlink socket: %s",
		     nl_geterror(ret));
		goto fail;
	}
	/* Kernels without these still work; errors just lose their text. */
	setsockopt(nl_socket_get_fd(nl->sk), SOL_NETLINK, NETLINK_EXT_ACK,
		   &one, sizeof(one));
	setsockopt(nl_socket_get_fd(nl->sk), SOL_NETLINK, NETLINK_CAP_ACK,
		   &one, sizeof(one));
	/* Dump parts can exceed a page; peek so libnl sizes its buffer. */
	nl_socket_enable_msg_peek(nl->sk);

	/* Asking the controller is what autoloads the module. */
	nl->family = genl_ctrl_resolve(nl->sk, VDISK_GENL_NAME);
	if (nl->family < 0) {
		if (nl->family == -NLE_OBJ_NOTFOUND)
			errf(cmd, NULL, "vdisk kernel module is not available (modprobe vdisk)");
		else
			errf(cmd, NULL, "cannot resolve the vdisk netlink family: %s",
			     nl_geterror(nl->family));
		ret = -ENOENT;
		goto fail;
	}
	return 0;
fail:
	nl_socket_free(nl->sk);
	nl->sk = NULL;
	return ret < 0 ? ret : -EIO;
}

void vnl_close(struct vnl *nl)
{
	if (nl->sk)
		nl_socket_free(nl->sk);
	nl->sk = NULL;
}

struct nl_msg *vnl_request(struct vnl *nl, uint8_t cmd, int flags)
{
	struct nl_msg *msg = nlmsg_alloc_size(VNL_REQ_SIZE);

	if (!msg)
		return NULL;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, nl->family, 0, flags,
			 cmd, VDISK_GENL_VERSION)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

int vnl_parse(struct nl_msg *msg, struct nlattr **tb, uint8_t *cmd)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);

	if (!genlmsg_valid_hdr(nlh, 0))
		return -EBADMSG;
	if (genlmsg_parse(nlh, 0, tb, VDISK_ATTR_MAX, reply_policy) < 0)
		return -EBADMSG;
	*cmd = ((struct genlmsghdr *)nlmsg_data(nlh))->cmd;
	return 0;
}

struct vnl_call {
	struct vnl *nl;
	vnl_reply_fn fn;
	void *arg;
	int err;	/* from the kernel, or the first failed callback */
	bool done;
};

/*
 * Turn the extended-ACK TLVs starting @off bytes into @nlh into a reason;
 * without a message, fall back to naming the attribute, then to strerror.
 */
static void extack_reason(struct vnl *nl, struct nlmsghdr *nlh, size_t off,
			  int err)
{
	struct nlattr *tb[NLMSGERR_ATTR_MAX + 1] = { NULL };
	char num[16];

	snprintf(nl->reason, sizeof(nl->reason), "%s", strerror(-err));
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS) || nlh->nlmsg_len <= off)
		return;
	if (nla_parse(tb, NLMSGERR_ATTR_MAX, (struct nlattr *)((char *)nlh + off),
		      nlh->nlmsg_len - off, NULL) < 0)
		return;

	if (tb[NLMSGERR_ATTR_MSG] && nla_len(tb[NLMSGERR_ATTR_MSG]) > 0) {
		const char *msg = nla_data(tb[NLMSGERR_ATTR_MSG]);
		int len = strnlen(msg, nla_len(tb[NLMSGERR_ATTR_MSG]));

		if (len > 0) {
			snprintf(nl->reason, sizeof(nl->reason), "%.*s", len, msg);
			return;
		}
	}
	if (tb[NLMSGERR_ATTR_MISS_TYPE] && nla_len(tb[NLMSGERR_ATTR_MISS_TYPE]) >= 4) {
		snprintf(nl->reason, sizeof(nl->reason), "%s (missing attribute %s)",
			 strerror(-err),
			 attr_name(nla_get_u32(tb[NLMSGERR_ATTR_MISS_TYPE]),
				   num, sizeof(num)));
		return;
	}
	if (tb[NLMSGERR_ATTR_OFFS] && nla_len(tb[NLMSGERR_ATTR_OFFS]) >= 4 && nl->req) {
		struct nlmsghdr *req = nlmsg_hdr(nl->req);
		uint32_t offs = nla_get_u32(tb[NLMSGERR_ATTR_OFFS]);

		if (offs >= NLMSG_HDRLEN + GENL_HDRLEN &&
		    offs + NLA_HDRLEN <= req->nlmsg_len) {
			struct nlattr *a = (struct nlattr *)((char *)req + offs);

			snprintf(nl->reason, sizeof(nl->reason), "%s (attribute %s)",
				 strerror(-err), attr_name(nla_type(a), num, sizeof(num)));
		}
	}
}

static int on_error(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct vnl_call *c = arg;
	/* libnl hands us the payload; the flags live in the header before it. */
	struct nlmsghdr *nlh = (struct nlmsghdr *)((char *)e - NLMSG_HDRLEN);
	size_t off = NLMSG_HDRLEN + sizeof(*e);

	(void)who;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += NLMSG_ALIGN(e->msg.nlmsg_len - NLMSG_HDRLEN);
	c->err = e->error < 0 ? e->error : -EPROTO;
	extack_reason(c->nl, nlh, NLMSG_ALIGN(off), c->err);
	c->done = true;
	return NL_STOP;
}

/* A dump that failed part-way says so in the NLMSG_DONE payload. */
static int on_finish(struct nl_msg *msg, void *arg)
{
	struct vnl_call *c = arg;
	struct nlmsghdr *nlh = nlmsg_hdr(msg);

	if (nlmsg_datalen(nlh) >= (int)sizeof(int)) {
		int err = *(int *)nlmsg_data(nlh);

		if (err < 0) {
			c->err = err;
			extack_reason(c->nl, nlh, NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(int)),
				      err);
		}
	}
	c->done = true;
	return NL_STOP;
}

static int on_ack(struct nl_msg *msg, void *arg)
{
	struct vnl_call *c = arg;

	(void)msg;
	c->done = true;
	return NL_STOP;
}

static int on_valid(struct nl_msg *msg, void *arg)
{
	struct vnl_call *c = arg;
	struct nlattr *tb[VDISK_ATTR_MAX + 1];
	uint8_t cmd;
	int ret;

	ret = vnl_parse(msg, tb, &cmd);
	if (!ret && c->fn)
		ret = c->fn(tb, cmd, c->arg);
	/* Keep reading: the rest of a dump must not be left in the socket. */
	if (ret < 0 && !c->err) {
		c->err = ret;
		snprintf(c->nl->reason, sizeof(c->nl->reason), "%s",
			 ret == -EBADMSG ? "malformed reply from the kernel" :
			 strerror(-ret));
	}
	return NL_OK;
}

int vnl_call(struct vnl *nl, struct nl_msg *msg, vnl_reply_fn fn, void *arg)
{
	struct vnl_call c = { .nl = nl, .fn = fn, .arg = arg };
	struct nl_cb *cb;
	int ret;

	nl->reason[0] = '\0';
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb) {
		nlmsg_free(msg);
		snprintf(nl->reason, sizeof(nl->reason), "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	nl_cb_err(cb, NL_CB_CUSTOM, on_error, &c);
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, on_finish, &c);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_ack, &c);
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, &c);

	nl->req = msg;
	ret = nl_send_auto(nl->sk, msg);
	if (ret < 0) {
		c.err = -EIO;
		snprintf(nl->reason, sizeof(nl->reason), "cannot send request: %s",
			 nl_geterror(ret));
		goto out;
	}
	while (!c.done) {
		ret = nl_recvmsgs(nl->sk, cb);
		if (ret < 0 && !c.done) {
			c.err = -EIO;
			snprintf(nl->reason, sizeof(nl->reason), "netlink: %s",
				 nl_geterror(ret));
			break;
		}
	}
out:
	nl->req = NULL;
	nlmsg_free(msg);
	nl_cb_put(cb);
	return c.err;
}

void vnl_perror(const struct vnl *nl, const char *obj)
{
	errf(nl->cmd, obj, "%s", nl->reason[0] ? nl->reason : "unknown error");
}
