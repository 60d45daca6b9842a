// SPDX-License-Identifier: GPL-2.0
/*
 * Soft Reserved layouts for the dax_hmem vs dax_cxl arbitration.
 *
 * hmem_layout=<name> places firmware "Soft Reserved" ranges relative to the
 * mock CXL windows and the auto-assembled region0 (the first 512M of CXL
 * Window 0, on cxl_mem.0 and cxl_mem.4). The ranges go where the kernel
 * reads them: the Soft Reserved tree (insert_soft_reserve_res()), so that
 * region_intersects_soft_reserve() and plan B's "Soft Reserved" in
 * /proc/iomem are the real code. Only the list dax_hmem walks for
 * hmem_platform.1 is mocked: hmem_active is filled from firmware at boot and
 * has no API to add to it later.
 *
 * hmem_hold=1 holds dax_hmem's deferred decision (its wait for CXL probing)
 * until hmem_hold is written 0, so that a test can put region assembly, or
 * dax_cxl's driver registration, before or after the decision on purpose.
 */
#include <linux/moduleparam.h>
#include <linux/ioport.h>
#include <linux/sizes.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/wait.h>
#include "mock.h"

enum hmem_layout_id {
	HMEM_LAYOUT_REGION,
	HMEM_LAYOUT_PARTIAL,
	HMEM_LAYOUT_TWO_RANGES,
	HMEM_LAYOUT_SPAN,
	HMEM_LAYOUT_OUTSIDE,
	HMEM_LAYOUT_NO_DECODERS,
	HMEM_LAYOUT_HOTADD,
};

static const char *const hmem_layout_names[] = {
	[HMEM_LAYOUT_REGION] = "region",
	[HMEM_LAYOUT_PARTIAL] = "partial",
	[HMEM_LAYOUT_TWO_RANGES] = "two_ranges",
	[HMEM_LAYOUT_SPAN] = "span",
	[HMEM_LAYOUT_OUTSIDE] = "outside",
	[HMEM_LAYOUT_NO_DECODERS] = "no_decoders",
	[HMEM_LAYOUT_HOTADD] = "hotadd",
};

#define MOCK_SR_MAX 2

static char *hmem_layout;
static int layout = HMEM_LAYOUT_REGION;
static struct resource mock_sr[MOCK_SR_MAX];
static int mock_sr_nr;
static int mock_sr_published;

/*
 * A held decision gives up by itself, before the hung task detector (120 s
 * in the VM) would report what waits on it; a one-vCPU TCG guest may take
 * 45 s to commit a region while the host is busy.
 */
#define HMEM_HOLD_MAX_MS 100000

static bool hmem_hold;
static int hmem_held;
static int hmem_walks;
static DECLARE_WAIT_QUEUE_HEAD(hmem_hold_wq);

static int hmem_hold_set(const char *val, const struct kernel_param *kp)
{
	int rc = param_set_bool(val, kp);

	if (!rc)
		wake_up_all(&hmem_hold_wq);
	return rc;
}

static const struct kernel_param_ops hmem_hold_ops = {
	.set = hmem_hold_set,
	.get = param_get_bool,
};

/**
 * hmem_layout_check() - validate the layout parameters, at load
 * @fail_autoassemble: cxl_test's fail_autoassemble parameter
 *
 * Naming a layout implies hmem_test. Returns 0, or -EINVAL with a message
 * that says what is wrong.
 */
int hmem_layout_check(bool fail_autoassemble)
{
	if (hmem_layout) {
		layout = match_string(hmem_layout_names, ARRAY_SIZE(hmem_layout_names),
				      hmem_layout);
		if (layout < 0) {
			pr_err("cxl_test: hmem_layout=%s: unknown; one of region, partial, two_ranges, span, outside, no_decoders, hotadd\n",
			       hmem_layout);
			return -EINVAL;
		}
		hmem_test = true;
	}
	if (layout == HMEM_LAYOUT_HOTADD && fail_autoassemble) {
		pr_err("cxl_test: hmem_layout=hotadd already withholds cxl_mem.4: drop fail_autoassemble\n");
		return -EINVAL;
	}
	if (hmem_hold && !hmem_test) {
		pr_err("cxl_test: hmem_hold needs hmem_test=1 or an hmem_layout\n");
		return -EINVAL;
	}
	return 0;
}

/* Whether cxl_mem.4 waits for a write to cxl_acpi.0's hotadd_memdev. */
bool hmem_layout_hotadd(void)
{
	return hmem_test && layout == HMEM_LAYOUT_HOTADD;
}

static void mock_sr_add(u64 start, u64 size)
{
	mock_sr[mock_sr_nr++] = DEFINE_RES_NAMED_DESC(start, size, "Soft Reserved",
						      IORESOURCE_MEM,
						      IORES_DESC_SOFT_RESERVED);
}

/**
 * hmem_layout_setup() - place the layout's Soft Reserved ranges
 *
 * Called once the mock windows have their addresses and before
 * hmem_platform.1 is registered: firmware's ranges exist before anyone
 * looks. Returns 0 or a negative errno.
 */
int hmem_layout_setup(void)
{
	struct range w0 = mock_cfmws_range(0), w1 = mock_cfmws_range(1), out;
	int i, rc;

	switch (layout) {
	case HMEM_LAYOUT_REGION:
	case HMEM_LAYOUT_HOTADD:
		mock_sr_add(w0.start, SZ_512M);
		break;
	case HMEM_LAYOUT_PARTIAL:
		mock_sr_add(w0.start, range_len(&w0));
		break;
	case HMEM_LAYOUT_TWO_RANGES:
		mock_sr_add(w0.start, SZ_512M);
		mock_sr_add(w0.start + SZ_512M, SZ_512M);
		break;
	case HMEM_LAYOUT_SPAN:
		/* region0, and a 256M region a test creates after it */
		mock_sr_add(w0.start, SZ_512M + SZ_256M);
		break;
	case HMEM_LAYOUT_OUTSIDE:
		rc = mock_alloc_hpa(SZ_512M, &out);
		if (rc)
			return rc;
		mock_sr_add(out.start, SZ_512M);
		break;
	case HMEM_LAYOUT_NO_DECODERS:
		mock_sr_add(w1.start, range_len(&w1));
		break;
	}

	for (i = 0; i < mock_sr_nr; i++) {
		rc = insert_soft_reserve_res(&mock_sr[i]);
		if (rc) {
			pr_err("cxl_test: cannot add Soft Reserved %pr: %d\n", &mock_sr[i], rc);
			hmem_layout_exit();
			return rc;
		}
		mock_sr_published++;
		pr_info("cxl_test: hmem_layout=%s: Soft Reserved %pr\n",
			hmem_layout_names[layout], &mock_sr[i]);
	}
	return 0;
}

/**
 * hmem_layout_release() - let a held decision go, for good
 *
 * Before hmem_platform.1 goes away: nothing may stay held on a device, or on
 * a module, that is leaving.
 */
void hmem_layout_release(void)
{
	WRITE_ONCE(hmem_hold, false);
	wake_up_all(&hmem_hold_wq);
}

/**
 * hmem_layout_exit() - take the Soft Reserved ranges out again
 */
void hmem_layout_exit(void)
{
	while (mock_sr_published)
		remove_resource(&mock_sr[--mock_sr_published]);
	mock_sr_nr = 0;
}

/**
 * mock_walk_hmem_resources() - what dax_hmem walks for hmem_platform.1
 * @host: hmem_platform.1
 * @fn: dax_hmem's callback
 *
 * Like walk_hmem_resources(): every range, in address order, stopping at
 * the first callback that fails.
 */
int mock_walk_hmem_resources(struct device *host, walk_hmem_fn fn)
{
	int i, rc = 0;

	for (i = 0; i < mock_sr_nr && !rc; i++) {
		dev_dbg(host, "walk cxl_test resource: %pr\n", &mock_sr[i]);
		rc = fn(host, 0, &mock_sr[i]);
	}
	WRITE_ONCE(hmem_walks, hmem_walks + 1);
	return rc;
}

/**
 * mock_hmem_hold() - hold dax_hmem's wait for CXL probing while hmem_hold is set
 *
 * Called before the real wait_for_device_probe(). Sleeps without counting
 * as a hung task, for at most HMEM_HOLD_MAX_MS.
 */
void mock_hmem_hold(void)
{
	if (!READ_ONCE(hmem_hold))
		return;
	WRITE_ONCE(hmem_held, hmem_held + 1);
	if (!wait_event_idle_timeout(hmem_hold_wq, !READ_ONCE(hmem_hold),
				     msecs_to_jiffies(HMEM_HOLD_MAX_MS)))
		pr_info("cxl_test: hmem_hold not released within %d ms, letting dax_hmem decide\n",
			HMEM_HOLD_MAX_MS);
	WRITE_ONCE(hmem_held, hmem_held - 1);
}

/* The layout's Soft Reserved ranges, one "start-end" (hex) a line. */
static int hmem_sr_get(char *buf, const struct kernel_param *kp)
{
	int i, len = 0;

	for (i = 0; i < mock_sr_published; i++)
		len += sysfs_emit_at(buf, len, "%#llx-%#llx\n",
				     (unsigned long long)mock_sr[i].start,
				     (unsigned long long)mock_sr[i].end);
	return len;
}

static const struct kernel_param_ops hmem_sr_ops = {
	.get = hmem_sr_get,
};

module_param(hmem_layout, charp, 0444);
MODULE_PARM_DESC(hmem_layout,
		 "Soft Reserved layout (implies hmem_test): region (default), partial, two_ranges, span, outside, no_decoders, hotadd");
module_param_cb(hmem_sr, &hmem_sr_ops, NULL, 0444);
MODULE_PARM_DESC(hmem_sr, "The Soft Reserved ranges of the layout (read only)");
module_param_cb(hmem_hold, &hmem_hold_ops, &hmem_hold, 0644);
MODULE_PARM_DESC(hmem_hold, "Hold dax_hmem's deferred decision until this is cleared");
module_param(hmem_held, int, 0444);
MODULE_PARM_DESC(hmem_held, "How many dax_hmem decisions hmem_hold is holding now");
module_param(hmem_walks, int, 0444);
MODULE_PARM_DESC(hmem_walks, "How many walks dax_hmem finished over the mock ranges");
