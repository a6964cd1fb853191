/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the daxpoold end-to-end tests share: the real daemon on a private
 * socket in the test's directory, asked directly or through daxpoolctl as a
 * user runs it. Compiled into each such test; the test's target defines
 * DAXPOOLD_PATH and DAXPOOLCTL_PATH (the build's programs).
 */
#ifndef DAXPOOL_TEST_DAEMON_HARNESS_H
#define DAXPOOL_TEST_DAEMON_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "util/protocol.h"

/* The running daemon's socket and pid (daemon_start()). */
extern char sock_path[108];
extern pid_t daemon_pid;

uint64_t now_ns(void); /* CLOCK_MONOTONIC */
void msleep(unsigned int ms);

/*
 * exec() the build's program @built, or (in the vm tier, where the build is
 * copied elsewhere) @name from PATH. Does not return.
 */
void exec_tool(const char *built, const char *name, char *const argv[]) __attribute__((noreturn));

/*
 * Start daxpoold on the test's socket with @config (NULL: empty); wait until
 * it answers and its MR tracer's load ended (on, or off and why).
 */
void daemon_start(const char *config);
/* Whether the daemon's MR tracer is on (its status). */
bool daemon_mr_tracer_on(void);
/* The daemon's MR tracer must be on: skip if daxpoold was built without it, else fail with why. */
void daemon_need_mr_tracer(void);
/* Set before daemon_start(): the daemon runs without CAP_SYS_PTRACE in its bounding set. */
extern bool daemon_without_ptrace;

/* Send @sig to the daemon and reap it; SIGTERM must end it with exit status 0. */
void daemon_kill(int sig);

/*
 * Ask the daemon directly (as daxpoolctl does). Return: the reply's status,
 * *ret_doc its JSON; or a negative errno when the daemon cannot be reached.
 */
int daemon_ask(const struct dp_msg *req, json_object **ret_doc);

/* The daemon's STATUS document (as "daxpoolctl status --json" gets it). */
json_object *daemon_status(void);

/*
 * Run daxpoolctl with @argv (NULL-terminated, the subcommand first) on the
 * test's socket; its standard output into @out. Return: its exit status.
 */
int ctl(char *out, size_t out_size, const char *const *argv);

/* Run a shell command, its output on ours (the test's log). Return: its exit status. */
int shell(const char *cmd);

#endif
