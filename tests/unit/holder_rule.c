/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daxpoold's holder rule (tools/daxpoold/holder_rule.c) on crafted facts:
 * a process counts as a possible holder of a device-dax device exactly when
 * it has pins daxpool did not take and it could ever have had the device --
 * it maps it, registered it, opened it (the open record), inherited it, or
 * nobody can tell. Each verdict comes with the sentence the refusal prints.
 */
#include "holder_rule.h"
#include "harness.h"

#define SEC 1000000000ull

/* The record of dax0.0 began 100 s after boot (CLOCK_BOOTTIME). */
static const struct dd_record_facts rec_on = { .recording = true,
					       .since_ns = 100 * SEC,
					       .since_real_ns = 1700000000 * SEC };
static const struct dd_record_facts rec_off = {
	.recording = false, .off_reason = "this kernel does not report opens of device nodes"
};

/* A process started after the record began, holding one 2 MiB MR of its own. */
static struct dd_proc_facts mr_process(void)
{
	return (struct dd_proc_facts){ .pid = 4242,
				       .start_ns = 200 * SEC,
				       .vm_pin_kb = 2048,
				       .mrs = 1,
				       .mr_bytes = 2u << 20 };
}

static bool judge(const struct dd_proc_facts *f, const struct dd_record_facts *rec, char *why)
{
	bool r = dd_holder_judge(f, "dax0.0", rec, why, 512);

	printf("# %s: %s\n", r ? "holder" : "no holder", why);
	return r;
}

TEST(never_opened_is_no_holder_whatever_it_pins)
{
	struct dd_proc_facts f = mr_process();
	char why[512];

	CHECK(!judge(&f, &rec_on, why));
	CHECK_EQ(why[0], '\0');
	f.vm_pin_kb = 1u << 20; /* a GiB pinned elsewhere changes nothing */
	f.mrs = 40;
	CHECK(!judge(&f, &rec_on, why));
}

TEST(opened_then_unmapped_with_an_mr_is_a_holder)
{
	struct dd_proc_facts f = mr_process();
	char why[512];

	f.opened_ns = 1700000123 * SEC;
	CHECK(judge(&f, &rec_on, why));
	CHECK(strstr(why, "opened dax0.0 at "));
	CHECK(strstr(why, "no longer maps it"));
	CHECK(strstr(why, "1 RDMA MR(s) of 2 MiB not registered through daxpool"));
	CHECK(strstr(why, "VmPin 2048 kB"));
	f.maps_it = true;
	CHECK(judge(&f, &rec_on, why));
	CHECK(strstr(why, "still maps it"));
}

TEST(nothing_pinned_is_no_holder_whatever_it_did)
{
	struct dd_proc_facts f = { .pid = 7, .start_ns = 1, .maps_it = true, .registered = true,
				   .opened_ns = 5 };
	char why[512];

	CHECK(!judge(&f, &rec_on, why));
	CHECK(!judge(&f, &rec_off, why));
	CHECK(!dd_holder_pins_unexplained(&f));
}

TEST(what_daxpool_pinned_is_the_drains)
{
	struct dd_proc_facts f = mr_process();
	char why[512];

	/* A client whose only MR is its daxpool pin: the drain revokes it. */
	f.registered = true;
	f.registered_ns = 1700000100 * SEC;
	f.own_mrs = 1;
	f.own_pin_kb = 2048;
	f.mr_bytes = 0;
	CHECK(!judge(&f, &rec_on, why));
	/* One more MR, registered straight with verbs on a map: a holder. */
	f.mrs = 2;
	f.vm_pin_kb = 4096;
	f.mr_bytes = 2u << 20;
	CHECK(judge(&f, &rec_on, why));
	CHECK(strstr(why, "registered dax0.0 with daxpool at "));
	CHECK(strstr(why, "1 RDMA MR(s) of 2 MiB"));
	/* Pinned pages beyond daxpool's without any MR (io_uring buffers elsewhere mapped). */
	f.mrs = 1;
	f.vm_pin_kb = 2048 + 64;
	CHECK(judge(&f, &rec_on, why));
	CHECK(strstr(why, "64 kB of pinned pages (VmPin) not pinned through daxpool"));
}

TEST(unknown_history_is_a_holder)
{
	struct dd_proc_facts f = mr_process();
	char why[512];

	f.start_ns = 50 * SEC; /* before the record of dax0.0 began */
	CHECK(judge(&f, &rec_on, why));
	CHECK(strstr(why, "was running before daxpoold began recording opens of dax0.0"));
	CHECK(strstr(why, "cannot be ruled out"));
	f.start_ns = 200 * SEC;
	CHECK(judge(&f, &rec_off, why));
	CHECK(strstr(why, "daxpoold records no opens here (this kernel does not report"));
	/* A device the record does not watch (since 0): nothing is known of it. */
	struct dd_record_facts unwatched = { .recording = true };

	CHECK(judge(&f, &unwatched, why));
}

TEST(an_inherited_descriptor_is_a_holder)
{
	struct dd_proc_facts f = mr_process();
	char why[512];

	f.opened_by_ancestor = 4000;
	CHECK(judge(&f, &rec_on, why));
	CHECK(strstr(why, "forked from pid 4000, which opened dax0.0 before"));
}

TEST(io_uring_buffers_on_a_mapping_count)
{
	struct dd_proc_facts f = { .pid = 9, .start_ns = 200 * SEC, .maps_it = true,
				   .uring_bufs = 3, .vm_pin_kb = 12 };
	char why[512];

	CHECK(judge(&f, &rec_on, why));
	CHECK(strstr(why, "maps dax0.0; 3 io_uring registered buffer(s)"));
}

TEST(the_sentence_always_fits)
{
	struct dd_proc_facts f = mr_process();
	char why[16];

	f.opened_ns = 1;
	CHECK(dd_holder_judge(&f, "dax0.0", &rec_on, why, sizeof(why)));
	CHECK_EQ(strlen(why), sizeof(why) - 1);
	CHECK(dd_holder_judge(&f, "dax0.0", &rec_on, why, 0));
}

/* The MR tracer's facts: an opener whose MRs are all recorded elsewhere, as a UCX worker. */
static struct dd_proc_facts traced_opener(void)
{
	struct dd_proc_facts f = mr_process();

	f.opened_ns = 1700000100 * SEC;
	f.traced = true;
	f.traced_umems = 1;
	f.traced_kb = 2048;
	return f;
}

TEST(traced_mrs_elsewhere_are_no_reason_to_hold)
{
	struct dd_proc_facts f = traced_opener();
	char why[512];

	CHECK(dd_holder_pins_traced_elsewhere(&f));
	CHECK(!judge(&f, &rec_on, why));
	CHECK_EQ(why[0], '\0');
	/* whatever its history: older than the record, or no record at all */
	f.start_ns = 50 * SEC;
	CHECK(!judge(&f, &rec_on, why));
	CHECK(!judge(&f, &rec_off, why));
	f.registered = true; /* a client that registered the device, drained: the same */
	CHECK(!judge(&f, &rec_on, why));
	/* the same facts without the tracer: the opener is a holder, as always */
	f = traced_opener();
	f.traced = false;
	CHECK(judge(&f, &rec_on, why));
	CHECK(strstr(why, "opened dax0.0 at "));
}

TEST(a_traced_mr_on_the_device_is_a_holder_whatever_its_history)
{
	struct dd_proc_facts f = traced_opener();
	char why[512];

	f.opened_ns = 0; /* started after the record, never seen opening it */
	f.traced_on_dev = 1;
	f.traced_on_dev_bytes = 2u << 20;
	CHECK(!dd_holder_pins_traced_elsewhere(&f));
	CHECK(judge(&f, &rec_on, why));
	CHECK(strstr(why, "1 RDMA MR(s) of 2 MiB not registered through daxpool pin pages of "
			  "dax0.0 (the MR tracer's record)"));
	CHECK(strstr(why, "no longer maps dax0.0"));
	f.opened_ns = 1700000100 * SEC; /* with a history, the history is said too */
	CHECK(judge(&f, &rec_on, why));
	CHECK(strstr(why, "opened dax0.0 at "));
	CHECK(strstr(why, "no longer maps it; 1 RDMA MR(s) of 2 MiB"));
	/* a daxpool pin on it (before the drain) is the drain's */
	f.traced_on_dev_own = 1;
	CHECK(!judge(&f, &rec_on, why));
}

TEST(what_the_tracer_does_not_cover_is_judged_as_before)
{
	struct dd_proc_facts f;
	char why[512];

	/* an MR the record lacks (registered before the tracer attached) */
	f = traced_opener();
	f.mrs = 2;
	f.vm_pin_kb = 4096;
	CHECK(!dd_holder_pins_traced_elsewhere(&f));
	CHECK(judge(&f, &rec_on, why));
	CHECK(strstr(why, "opened dax0.0 at "));
	CHECK(strstr(why, "2 RDMA MR(s)"));
	/* more pinned than the recorded MRs pin (an io_uring buffer elsewhere, another pinner) */
	f = traced_opener();
	f.vm_pin_kb = 2052;
	CHECK(judge(&f, &rec_on, why));
	/* an io_uring buffer on its mapping of the device */
	f = traced_opener();
	f.maps_it = true;
	f.uring_bufs = 1;
	CHECK(judge(&f, &rec_on, why));
	/* and a process that never had the device stays no holder with unexplained pins */
	f = traced_opener();
	f.opened_ns = 0;
	f.vm_pin_kb = 4096;
	CHECK(!judge(&f, &rec_on, why));
}

/*
 * A record whose ranges are not exact (merged over gaps, or its scatterlist
 * not walked to the end) that touches the device proves nothing either way:
 * the tracer does not clear the process, and its history decides.
 */
TEST(an_inexact_record_on_the_device_leaves_it_to_the_history)
{
	struct dd_proc_facts f = traced_opener();
	char why[512];

	f.traced_vague = true;
	CHECK(!dd_holder_pins_traced_elsewhere(&f));
	CHECK(judge(&f, &rec_on, why)); /* it opened the device: a holder, as without the tracer */
	CHECK(strstr(why, "opened dax0.0 at "));
	f.opened_ns = 0; /* provably never had the device: not a holder for an inexact record */
	CHECK(!judge(&f, &rec_on, why));
}
