// SPDX-License-Identifier: GPL-2.0
/*
 * monitor: listen on the "events" multicast group.  Each event is flushed
 * as its own line so a reader of a pipe or file sees it at once.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <string.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "nl.h"
#include "vdiskctl.h"

#define CMD "monitor"

/* Room for bursts: losing events is reported, but better avoided. */
#define MONITOR_RCVBUF	(1 << 20)

static const struct option long_opts[] = {
	{ "json",  no_argument,	      NULL, 'J' },
	{ "count", required_argument, NULL, 'c' },
	{ "help",  no_argument,	      NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

struct monitor {
	bool json;
	uint32_t count;		/* events left to print, 0: unlimited */
	bool limited;
	int err;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static const char *event_name(uint8_t cmd)
{
	switch (cmd) {
	case VDISK_CMD_EVENT_ATTACH:	return "attach";
	case VDISK_CMD_EVENT_DETACH:	return "detach";
	case VDISK_CMD_EVENT_RESIZE:	return "resize";
	case VDISK_CMD_EVENT_CHANGE:	return "change";
	}
	return NULL;
}

/* " backing=LAYER1,LAYER2": the chain below the image, nearest first. */
static void print_backing(const struct vdisk_info *d)
{
	unsigned int i;

	for (i = 0; i < d->nr_backing; i++) {
		fputs(i ? "," : " backing=", stdout);
		text_string(stdout, d->backing[i].path ? d->backing[i].path : "?");
	}
}

static void print_text(const char *event, uint8_t cmd, const struct vdisk_info *d)
{
	printf("%s %s", event, d->dev);
	if (d->label[0]) {
		fputs(" name=", stdout);
		text_string(stdout, d->label);
	}
	switch (cmd) {
	case VDISK_CMD_EVENT_ATTACH:
		printf(" size=%" PRIu64 " format=%s", d->size, format_name(d->format));
		if (d->has_path) {
			fputs(" backing-file=", stdout);
			text_string(stdout, d->path);
		}
		print_backing(d);
		break;
	case VDISK_CMD_EVENT_RESIZE:
		printf(" size=%" PRIu64, d->size);
		break;
	case VDISK_CMD_EVENT_CHANGE:
		printf(" ro=%d cache=%s autoclear=%d",
		       !!(d->flags & VDISK_FLAG_READ_ONLY), cache_name(d->cache),
		       !!(d->flags & VDISK_FLAG_AUTOCLEAR));
		break;
	}
	putchar('\n');
}

static int on_event(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[VDISK_ATTR_MAX + 1];
	struct monitor *m = arg;
	struct vdisk_info d;
	const char *event;
	uint8_t cmd;

	/* Unknown or malformed events are skipped, not fatal. */
	if (vnl_parse(msg, tb, &cmd) < 0 || !(event = event_name(cmd)) ||
	    dev_from_attrs(tb, &d) < 0)
		return NL_SKIP;
	d.detached = cmd == VDISK_CMD_EVENT_DETACH;
	if (m->json) {
		json_device(stdout, &d, event);
		putchar('\n');
	} else {
		print_text(event, cmd, &d);
	}
	dev_info_free(&d);
	if (fflush(stdout) == EOF) {
		m->err = errno;
		return NL_STOP;
	}
	if (m->limited && --m->count == 0)
		return NL_STOP;
	return NL_OK;
}

static int listen_events(struct vnl *nl, struct monitor *m)
{
	struct pollfd pfd = { .fd = nl_socket_get_fd(nl->sk), .events = POLLIN };
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block, orig;
	int ret;

	/*
	 * Signals are only let in while waiting in ppoll(), so one that
	 * arrives between checking @stop and sleeping is not lost.
	 */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &orig);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	while (!stop && !(m->limited && m->count == 0)) {
		ret = ppoll(&pfd, 1, NULL, &orig);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			errf(CMD, NULL, "poll: %s", strerror(errno));
			return EXIT_OPERATION;
		}
		ret = nl_recvmsgs_default(nl->sk);
		if (m->err) {
			errf(CMD, NULL, "write error: %s", strerror(m->err));
			return EXIT_OPERATION;
		}
		/* Overrun: say so and keep listening. */
		if (ret == -NLE_NOMEM) {
			errf(CMD, NULL, "events were lost (receive buffer overrun)");
		} else if (ret < 0) {
			errf(CMD, NULL, "netlink: %s", nl_geterror(ret));
			return EXIT_OPERATION;
		}
	}
	return 0;
}

int cmd_monitor(int argc, char **argv)
{
	struct monitor m = { 0 };
	struct vnl nl;
	int c, grp, ret;

	opterr = 0;
	while ((c = next_opt(argc, argv, ":Jc:h", long_opts)) != -1) {
		switch (c) {
		case 'J':
			m.json = true;
			break;
		case 'c':
			if (parse_u32(optarg, &m.count) || !m.count) {
				errf(CMD, NULL, "invalid count '%s' (a positive number)",
				     optarg);
				return EXIT_USAGE;
			}
			m.limited = true;
			break;
		case 'h':
			return print_usage(CMD);
		default:
			return opt_error(CMD, c, argv);
		}
	}
	if (optind < argc)
		return usage_error(CMD, "too many arguments");

	if (vnl_open(&nl, CMD))
		return EXIT_OPERATION;
	grp = genl_ctrl_resolve_grp(nl.sk, VDISK_GENL_NAME, VDISK_GENL_MCGRP_EVENTS);
	if (grp < 0) {
		errf(CMD, NULL, "cannot find the \"%s\" multicast group: %s",
		     VDISK_GENL_MCGRP_EVENTS, nl_geterror(grp));
		ret = EXIT_OPERATION;
		goto out;
	}
	ret = nl_socket_add_membership(nl.sk, grp);
	if (ret < 0) {
		errf(CMD, NULL, "cannot join the \"%s\" multicast group: %s",
		     VDISK_GENL_MCGRP_EVENTS, nl_geterror(ret));
		ret = EXIT_OPERATION;
		goto out;
	}
	/* Events carry sequence number 0; they answer no request of ours. */
	nl_socket_disable_seq_check(nl.sk);
	nl_socket_set_buffer_size(nl.sk, MONITOR_RCVBUF, 0);
	nl_socket_modify_cb(nl.sk, NL_CB_VALID, NL_CB_CUSTOM, on_event, &m);
	ret = listen_events(&nl, &m);
out:
	vnl_close(&nl);
	return ret;
}
