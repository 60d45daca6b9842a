// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for dax_hmem's decision over Soft Reserved ranges in CXL
 * windows: which ranges it registers at once, defers to CXL's initial
 * probe, leaves to a committed CXL region or takes over, and how long the
 * deferred decision waits for device probing.
 *
 * The real paths run (dax_hmem_platform_probe(), hmem_register_device(),
 * hmem_process_deferred()), over a CXL window of the suite's own in
 * /proc/iomem; KUnit static stubs stand in for what only a booted CXL
 * topology would answer: the ranges HMEM knows of, whether a committed
 * region contains one, and the registration of an hmem device, which is
 * recorded instead. The timing cases use real devices and drivers of their
 * own whose probes are slow, hang, or defer forever.
 */
#include <kunit/static_stub.h>
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/memregion.h>
#include <linux/moduleparam.h>
#include <linux/platform_device.h>
#include <linux/string.h>
#include "../bus.h"
#include "../hmem/hmem.h"

#define KUNIT_HOST	"dax-hmem-kunit-host"
#define KUNIT_SLOW	"dax-hmem-kunit-slow"

/*
 * The Soft Reserved ranges the stubbed walk reports, at unused addresses:
 * one below the suite's CXL window, two inside it.
 */
enum { R_OUTSIDE, R_CLAIMED, R_UNCLAIMED, NR_RANGES };

#define KUNIT_WINDOW_BASE	0xe100000000ULL

static struct resource test_ranges[NR_RANGES] = {
	[R_OUTSIDE] = DEFINE_RES_MEM_NAMED(KUNIT_WINDOW_BASE - SZ_256M, SZ_256M, "outside"),
	[R_CLAIMED] = DEFINE_RES_MEM_NAMED(KUNIT_WINDOW_BASE, SZ_256M, "claimed"),
	[R_UNCLAIMED] = DEFINE_RES_MEM_NAMED(KUNIT_WINDOW_BASE + SZ_256M, SZ_256M, "unclaimed"),
};

static struct resource test_window = DEFINE_RES_NAMED_DESC(KUNIT_WINDOW_BASE, SZ_512M,
							   "CXL Window dax-hmem-kunit",
							   IORESOURCE_MEM, IORES_DESC_CXL);

struct hmem_kunit {
	unsigned long registered;	/* bit per test_ranges[] index */
	bool claimed_in_flight;		/* R_UNCLAIMED gets claimed by a slow probe */
	struct completion *slow_done;
	bool none_claimed;		/* no committed region claims anything */
	unsigned long fail;		/* bit per range whose registration fails */
};

static int range_index(const struct resource *res)
{
	int i;

	for (i = 0; i < NR_RANGES; i++)
		if (res->start == test_ranges[i].start)
			return i;
	return -1;
}

static int stub_walk(struct device *host, walk_hmem_fn fn)
{
	int i, rc;

	for (i = 0; i < NR_RANGES; i++) {
		rc = fn(host, 0, &test_ranges[i]);
		if (rc)
			return rc;
	}
	return 0;
}

static bool stub_cxl_claims(const struct resource *res)
{
	struct kunit *test = kunit_get_current_test();
	struct hmem_kunit *ctx = test->priv;

	if (ctx->none_claimed)
		return false;
	if (range_index(res) == R_CLAIMED)
		return true;
	/* What a CXL probe still in flight at the start of the wait commits. */
	return range_index(res) == R_UNCLAIMED && ctx->claimed_in_flight &&
	       ctx->slow_done && completion_done(ctx->slow_done);
}

static int stub_register(struct device *host, int target_nid, const struct resource *res)
{
	struct kunit *test = kunit_get_current_test();
	struct hmem_kunit *ctx = test->priv;
	int i = range_index(res);

	KUNIT_EXPECT_GE(test, i, 0);
	if (i < 0)
		return 0;
	if (test_bit(i, &ctx->fail))
		return -ENOMEM;
	__set_bit(i, &ctx->registered);
	return 0;
}

static void stub_all(struct kunit *test)
{
	kunit_activate_static_stub(test, hmem_walk, stub_walk);
	kunit_activate_static_stub(test, hmem_cxl_claims, stub_cxl_claims);
	kunit_activate_static_stub(test, __hmem_register_device, stub_register);
}

/* A host device in the shape dax_hmem expects, bound to a driver of ours. */
static int host_probe(struct platform_device *pdev)
{
	return 0;
}

static struct platform_driver host_driver = {
	.probe = host_probe,
	.driver.name = KUNIT_HOST,
};

static void host_release(struct device *dev)
{
	kfree(to_hmem_platform_device(to_platform_device(dev)));
}

static void host_noop_work(struct work_struct *work)
{
}

KUNIT_DEFINE_ACTION_WRAPPER(unregister_pdev, platform_device_unregister, struct platform_device *);

static struct hmem_platform_device *new_host(struct kunit *test)
{
	struct hmem_platform_device *hpdev = kzalloc_obj(*hpdev);
	int rc;

	KUNIT_ASSERT_NOT_NULL(test, hpdev);
	hpdev->pdev.name = KUNIT_HOST;
	hpdev->pdev.id = PLATFORM_DEVID_AUTO;
	hpdev->pdev.dev.release = host_release;
	INIT_WORK(&hpdev->work, host_noop_work);
	rc = platform_device_register(&hpdev->pdev);
	if (rc)
		platform_device_put(&hpdev->pdev);	/* frees hpdev */
	KUNIT_ASSERT_EQ(test, rc, 0);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, unregister_pdev, &hpdev->pdev), 0);
	KUNIT_ASSERT_NOT_NULL(test, hpdev->pdev.dev.driver);
	return hpdev;
}

/*
 * dax_hmem_platform_probe() under the host's device lock, as the driver
 * core calls it: the deferred pass takes that lock before it looks at
 * did_probe, so it cannot run in the middle of the probe walk.
 */
static int probe_host(struct hmem_platform_device *host)
{
	guard(device)(&host->pdev.dev);
	return dax_hmem_platform_probe(&host->pdev);
}

/*
 * A rebind of the host, its deferred pass left for the test to run: KUnit's
 * static stubs redirect only the calls made from the test's own thread, so
 * the host's work is disabled and the probe walk cannot queue it.
 */
static int rebind_host(struct hmem_platform_device *host)
{
	disable_work_sync(&host->work);
	return probe_host(host);
}

/* Let a deferred pass queued on dax_hmem's workqueue finish. */
static void flush_deferred(void *unused)
{
	dax_hmem_flush_work();
}

static int hmem_kunit_init(struct kunit *test)
{
	struct hmem_kunit *ctx = kunit_kzalloc(test, sizeof(*ctx), GFP_KERNEL);

	if (!ctx)
		return -ENOMEM;
	test->priv = ctx;
	/* Runs after every other cleanup of the test: no work outlives it. */
	return kunit_add_action_or_reset(test, flush_deferred, NULL);
}

/* The decision itself, over every combination of what it consults. */
struct decide_case {
	const char *name;
	int range;
	bool cxl_probed;
	enum hmem_decision want;
};

static const struct decide_case decide_cases[] = {
	{ "outside_window_before_cxl_probe", R_OUTSIDE, false, HMEM_REGISTER },
	{ "outside_window_after_cxl_probe", R_OUTSIDE, true, HMEM_REGISTER },
	{ "claimed_before_cxl_probe", R_CLAIMED, false, HMEM_DEFER },
	{ "unclaimed_before_cxl_probe", R_UNCLAIMED, false, HMEM_DEFER },
	{ "claimed_after_cxl_probe", R_CLAIMED, true, HMEM_LEAVE_TO_CXL },
	{ "unclaimed_after_cxl_probe", R_UNCLAIMED, true, HMEM_TAKE_OVER },
};

KUNIT_ARRAY_PARAM_DESC(decide, decide_cases, name);

static void hmem_decide_table(struct kunit *test)
{
	const struct decide_case *c = test->param_value;

	stub_all(test);
	KUNIT_EXPECT_EQ(test, hmem_decide(&test_ranges[c->range], c->cxl_probed), c->want);
}

/*
 * The probe walk registers what lies outside CXL windows and queues the
 * rest for after CXL's initial probe.
 */
static void hmem_probe_registers_outside_defers_rest(struct kunit *test)
{
	struct hmem_kunit *ctx = test->priv;
	struct hmem_platform_device *host = new_host(test);

	stub_all(test);
	KUNIT_ASSERT_EQ(test, probe_host(host), 0);
	KUNIT_EXPECT_EQ(test, ctx->registered, BIT(R_OUTSIDE));
	KUNIT_EXPECT_TRUE(test, work_busy(&host->work) || host->did_probe);
}

/*
 * The deferred pass, once: a range a committed region contains is CXL's,
 * the unclaimed one is HMEM's; a second pass changes nothing.
 */
static void hmem_deferred_pass_takes_unclaimed_once(struct kunit *test)
{
	struct hmem_kunit *ctx = test->priv;
	struct hmem_platform_device *host = new_host(test);

	stub_all(test);
	hmem_process_deferred(host);
	KUNIT_EXPECT_EQ(test, ctx->registered, BIT(R_UNCLAIMED));
	KUNIT_EXPECT_TRUE(test, host->did_probe);

	ctx->registered = 0;
	hmem_process_deferred(host);
	KUNIT_EXPECT_EQ(test, ctx->registered, 0);
}

/*
 * The deferred pass runs once and its result goes nowhere: a range that
 * fails to register must not cost the ranges after it their owner.
 */
static void hmem_deferred_pass_survives_a_failed_range(struct kunit *test)
{
	struct hmem_kunit *ctx = test->priv;
	struct hmem_platform_device *host = new_host(test);

	stub_all(test);
	ctx->none_claimed = true;
	__set_bit(R_CLAIMED, &ctx->fail);	/* walked before R_UNCLAIMED */
	hmem_process_deferred(host);
	KUNIT_EXPECT_TRUE(test, host->did_probe);
	KUNIT_EXPECT_EQ_MSG(test, ctx->registered, BIT(R_UNCLAIMED),
			    "the range after a failed one was not registered");
}

KUNIT_DEFINE_ACTION_WRAPPER(remove_res, remove_resource, struct resource *);

/*
 * Firmware gives HMEM its Soft Reserved ranges only: a range that is partly
 * something else (System RAM, in soft_reserve_resource a gap) is not HMEM's,
 * however much of it is Soft Reserved.
 */
static void hmem_partly_soft_reserved_is_not_taken(struct kunit *test)
{
	const resource_size_t base = 0x7e0040000000ULL;
	struct resource *sr = kunit_kzalloc(test, sizeof(*sr), GFP_KERNEL);
	struct resource all = DEFINE_RES_MEM(base, SZ_256M);
	struct resource above = DEFINE_RES_MEM(base, SZ_512M);
	struct resource below = DEFINE_RES_MEM(base - SZ_256M, SZ_512M);
	struct resource none = DEFINE_RES_MEM(base + SZ_256M, SZ_256M);

	KUNIT_ASSERT_NOT_NULL(test, sr);
	*sr = DEFINE_RES_NAMED_DESC(base, SZ_256M, "Soft Reserved", IORESOURCE_MEM,
				    IORES_DESC_SOFT_RESERVED);
	KUNIT_ASSERT_EQ(test, insert_resource(&soft_reserve_resource, sr), 0);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, remove_res, sr), 0);

	KUNIT_EXPECT_TRUE(test, hmem_is_soft_reserved(&all));
	KUNIT_EXPECT_FALSE_MSG(test, hmem_is_soft_reserved(&above),
			       "half Soft Reserved, half not: taken whole");
	KUNIT_EXPECT_FALSE_MSG(test, hmem_is_soft_reserved(&below),
			       "half not, half Soft Reserved: taken whole");
	KUNIT_EXPECT_FALSE(test, hmem_is_soft_reserved(&none));
}

/*
 * A reload or rebind after CXL's initial probe leaves no range without an
 * owner: once its deferred pass has run, the unclaimed one is HMEM's again
 * and the claimed one stays CXL's.
 */
static void hmem_rebind_leaves_no_orphan(struct kunit *test)
{
	struct hmem_kunit *ctx = test->priv;
	struct hmem_platform_device *host = new_host(test);

	stub_all(test);
	hmem_process_deferred(host);
	KUNIT_ASSERT_TRUE(test, host->did_probe);

	ctx->registered = 0;
	KUNIT_ASSERT_EQ(test, rebind_host(host), 0);
	KUNIT_EXPECT_FALSE_MSG(test, host->did_probe, "the rebind asked for no decision");
	hmem_process_deferred(host);
	KUNIT_EXPECT_TRUE_MSG(test, ctx->registered & BIT(R_UNCLAIMED),
			      "the unclaimed range has no owner after a rebind");
	KUNIT_EXPECT_TRUE(test, ctx->registered & BIT(R_OUTSIDE));
	KUNIT_EXPECT_FALSE(test, ctx->registered & BIT(R_CLAIMED));
}

/* Devices whose probe runs until released, or defers forever. */
enum probe_mode { PROBE_HANG, PROBE_DEFER_FOREVER };

struct slow_dev {
	struct platform_device *pdev;
	enum probe_mode mode;
	struct completion started;	/* the probe is running */
	struct completion release;	/* PROBE_HANG: let the probe return */
	struct completion done;		/* the probe has returned */
	struct completion registered;	/* platform_device_register_data() returned */
	ktime_t returned;		/* when the probe returned */
	struct task_struct *task;
};

static int slow_probe(struct platform_device *pdev)
{
	struct slow_dev *me = *(struct slow_dev **)dev_get_platdata(&pdev->dev);
	int rc = 0;

	complete_all(&me->started);
	switch (me->mode) {
	case PROBE_HANG:
		wait_for_completion(&me->release);
		break;
	case PROBE_DEFER_FOREVER:
		rc = -EPROBE_DEFER;
		break;
	}
	WRITE_ONCE(me->returned, ktime_get());
	complete_all(&me->done);
	return rc;
}

static struct platform_driver slow_driver = {
	.probe = slow_probe,
	.driver.name = KUNIT_SLOW,
};

static int slow_register(void *data)
{
	struct slow_dev *sd = data;

	struct platform_device *pdev;

	pdev = platform_device_register_data(NULL, KUNIT_SLOW, PLATFORM_DEVID_AUTO,
					     &sd, sizeof(sd));
	WRITE_ONCE(sd->pdev, pdev);
	complete_all(&sd->registered);
	return 0;
}

static void slow_cleanup(void *data)
{
	struct slow_dev *sd = data;

	complete_all(&sd->release);
	kthread_stop(sd->task);
	if (!IS_ERR_OR_NULL(sd->pdev))
		platform_device_unregister(sd->pdev);
	put_task_struct(sd->task);
}

/* Register a device whose probe runs (until released, or deferring) in a thread of its own. */
static struct slow_dev *start_probe(struct kunit *test, enum probe_mode mode)
{
	struct slow_dev *sd = kunit_kzalloc(test, sizeof(*sd), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, sd);
	sd->mode = mode;
	init_completion(&sd->started);
	init_completion(&sd->release);
	init_completion(&sd->done);
	init_completion(&sd->registered);
	sd->task = kthread_create(slow_register, sd, "dax-hmem-kunit-probe");
	KUNIT_ASSERT_FALSE(test, IS_ERR(sd->task));
	get_task_struct(sd->task);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, slow_cleanup, sd), 0);
	wake_up_process(sd->task);
	/* Until the probe has started, wait_for_device_probe() has nothing to wait for. */
	KUNIT_ASSERT_TRUE(test, wait_for_completion_timeout(&sd->started, 5 * HZ));
	return sd;
}

/* A dax_hmem parameter, set the way the kernel command line would set it. */
static int set_hmem_param(struct kunit *test, const char *name, const char *val)
{
	const struct kernel_param *kp;
	char full[64];
	int rc = -ENOENT;

	snprintf(full, sizeof(full), "dax_hmem.%s", name);
	kernel_param_lock(NULL);
	for (kp = __start___param; kp < __stop___param; kp++)
		if (!strcmp(kp->name, full))
			rc = kp->ops->set(val, kp);
	kernel_param_unlock(NULL);
	if (rc)
		kunit_info(test, "%s=%s: %d", full, val, rc);
	return rc;
}

static int set_probe_timeout(struct kunit *test, const char *ms)
{
	return set_hmem_param(test, "cxl_probe_timeout_ms", ms);
}

static void reset_probe_timeout(void *test)
{
	set_probe_timeout(test, "0");
}

struct decider {
	struct hmem_platform_device *host;
	struct completion done;
	ktime_t start;
	s64 ms;
};

static int decider_fn(void *data)
{
	struct decider *d = data;

	hmem_process_deferred(d->host);
	d->ms = ktime_ms_delta(ktime_get(), d->start);
	complete(&d->done);
	while (!kthread_should_stop())
		schedule_timeout_interruptible(HZ / 10);
	return 0;
}

static void decider_stop(void *task)
{
	kthread_stop(task);
	put_task_struct(task);
}

#define TIMEOUT_MS	300

/*
 * A CXL-side probe that never returns holds the decision no longer than
 * dax_hmem.cxl_probe_timeout_ms; with 7.3's unbounded wait it holds it for
 * as long as the probe hangs.
 */
static void hmem_hung_probe_bounded_by_timeout(struct kunit *test)
{
	struct hmem_platform_device *host = new_host(test);
	struct decider *d = kunit_kzalloc(test, sizeof(*d), GFP_KERNEL);
	struct task_struct *task;
	struct slow_dev *hung;
	bool decided;

	KUNIT_ASSERT_NOT_NULL(test, d);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, reset_probe_timeout, test), 0);
	set_probe_timeout(test, __stringify(TIMEOUT_MS));
	hung = start_probe(test, PROBE_HANG);

	d->host = host;
	init_completion(&d->done);
	d->start = ktime_get();
	task = kthread_create(decider_fn, d, "dax-hmem-kunit-decide");
	KUNIT_ASSERT_FALSE(test, IS_ERR(task));
	get_task_struct(task);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, decider_stop, task), 0);
	wake_up_process(task);

	decided = wait_for_completion_timeout(&d->done, msecs_to_jiffies(TIMEOUT_MS + 3000));
	/* Whatever happened, the hung probe goes now, so that nothing stays stuck. */
	complete_all(&hung->release);
	KUNIT_ASSERT_TRUE_MSG(test, decided,
			      "decision still waiting %d ms into a hung probe (timeout %d ms)",
			      TIMEOUT_MS + 3000, TIMEOUT_MS);
	kunit_info(test, "decision latency with a hung probe: %lld ms (timeout %d ms)",
		   d->ms, TIMEOUT_MS);
	/*
	 * The timeout is counted in jiffies and the latency in ktime; under TCG
	 * the two drift apart by tens of percent over short spans, so the lower
	 * bound only shows that the decision did wait for the timeout.
	 */
	KUNIT_EXPECT_GE(test, d->ms, TIMEOUT_MS / 2);
	KUNIT_EXPECT_LT(test, d->ms, TIMEOUT_MS + 1000);
	KUNIT_EXPECT_TRUE(test, host->did_probe);
}

/*
 * A CXL-side probe in flight when the deferred pass starts, quick or slow, is
 * waited for (with and without a timeout), and what it commits is what the
 * decision sees: the range it claims is left to CXL. The probe cannot return
 * before a releaser thread lets it, probe_ms after the pass started: the
 * order is made, not hoped for, and the releaser records whether the
 * decision was still pending when it let go.
 */
struct slow_case {
	const char *name;
	const char *timeout_ms;
	unsigned int probe_ms;
};

static const struct slow_case slow_cases[] = {
	{ "normal_probe", "0", 20 },
	{ "slow_probe_no_timeout", "0", 400 },
	{ "slow_probe_within_timeout", "5000", 400 },
};

KUNIT_ARRAY_PARAM_DESC(slow, slow_cases, name);

struct releaser {
	struct slow_dev *probe;
	unsigned int ms;
	bool decided;			/* set by the test once the pass returned */
	bool decided_at_release;	/* what the releaser saw when it let go */
	struct completion armed;	/* the releaser is counting */
	struct completion done;
};

static int releaser_fn(void *data)
{
	struct releaser *r = data;

	complete(&r->armed);
	schedule_timeout_uninterruptible(msecs_to_jiffies(r->ms));
	r->decided_at_release = READ_ONCE(r->decided);
	complete_all(&r->probe->release);
	complete_all(&r->done);
	while (!kthread_should_stop())
		schedule_timeout_interruptible(HZ / 10);
	return 0;
}

static void releaser_stop(void *data)
{
	struct releaser *r = data;

	wait_for_completion(&r->done);
}

/*
 * Run the deferred pass here, while @probe is in flight: a releaser thread
 * lets the probe return @ms after the pass started. Checks the order itself:
 * held probe, pending decision, release, decision.
 */
static void decide_while_probing(struct kunit *test, struct hmem_platform_device *host,
				 struct slow_dev *probe, unsigned int ms, const char *what)
{
	struct releaser *r = kunit_kzalloc(test, sizeof(*r), GFP_KERNEL);
	struct task_struct *task;
	ktime_t t0, decided, returned;

	KUNIT_ASSERT_NOT_NULL(test, r);
	r->probe = probe;
	r->ms = ms;
	init_completion(&r->armed);
	init_completion(&r->done);
	task = kthread_run(releaser_fn, r, "dax-hmem-kunit-release");
	KUNIT_ASSERT_FALSE(test, IS_ERR(task));
	get_task_struct(task);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, decider_stop, task), 0);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, releaser_stop, r), 0);
	wait_for_completion(&r->armed);

	t0 = ktime_get();
	hmem_process_deferred(host);
	decided = ktime_get();
	WRITE_ONCE(r->decided, true);
	wait_for_completion(&r->done);
	kunit_info(test, "decision latency with a %u ms probe (%s): %lld ms",
		   ms, what, ktime_ms_delta(decided, t0));

	KUNIT_EXPECT_FALSE_MSG(test, r->decided_at_release,
			       "decided while the probe was still in flight");
	returned = READ_ONCE(probe->returned);
	KUNIT_EXPECT_TRUE(test, completion_done(&probe->done));
	KUNIT_EXPECT_TRUE_MSG(test, returned && !ktime_before(decided, returned),
			      "decided before the probe returned");
}

static void hmem_probe_in_flight_is_waited_for(struct kunit *test)
{
	const struct slow_case *c = test->param_value;
	struct hmem_kunit *ctx = test->priv;
	struct hmem_platform_device *host = new_host(test);
	struct slow_dev *probe;

	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, reset_probe_timeout, test), 0);
	if (strcmp(c->timeout_ms, "0"))
		set_probe_timeout(test, c->timeout_ms);
	stub_all(test);
	probe = start_probe(test, PROBE_HANG);
	ctx->slow_done = &probe->done;
	ctx->claimed_in_flight = true;

	decide_while_probing(test, host, probe, c->probe_ms, c->name);
	/* The probe's region claims R_UNCLAIMED: it is CXL's. */
	KUNIT_EXPECT_EQ(test, ctx->registered, 0);
}

/*
 * A rebind while a CXL probe is still in flight, one that will commit a
 * region over R_UNCLAIMED (a cxl_pci rebind racing the hmem_platform one):
 * the rebind's decision waits for it, and the range is CXL's. Deciding at
 * bind time would see the range unclaimed and take it.
 */
static void hmem_rebind_waits_for_probing(struct kunit *test)
{
	struct hmem_kunit *ctx = test->priv;
	struct hmem_platform_device *host = new_host(test);
	struct slow_dev *assembling;

	stub_all(test);
	hmem_process_deferred(host);
	KUNIT_ASSERT_TRUE(test, host->did_probe);

	assembling = start_probe(test, PROBE_HANG);
	ctx->slow_done = &assembling->done;
	ctx->claimed_in_flight = true;
	ctx->registered = 0;
	KUNIT_ASSERT_EQ(test, rebind_host(host), 0);
	KUNIT_EXPECT_EQ_MSG(test, ctx->registered, BIT(R_OUTSIDE),
			    "a range in the CXL window was decided at bind time, CXL still probing");

	decide_while_probing(test, host, assembling, 50, "rebind");
	KUNIT_EXPECT_TRUE(test, host->did_probe);
	KUNIT_EXPECT_EQ_MSG(test, ctx->registered, BIT(R_OUTSIDE),
			    "the range of a region assembling at rebind was taken from it");
}

/*
 * A device whose driver defers forever is not a probe in flight: it does
 * not hold the decision, and neither does an idle system.
 */
static void hmem_defer_forever_does_not_hold(struct kunit *test)
{
	struct hmem_platform_device *host = new_host(test);
	struct slow_dev *deferring;
	ktime_t t0;
	s64 ms;

	deferring = start_probe(test, PROBE_DEFER_FOREVER);
	KUNIT_ASSERT_TRUE(test, wait_for_completion_timeout(&deferring->registered, 5 * HZ));
	KUNIT_ASSERT_FALSE(test, IS_ERR_OR_NULL(deferring->pdev));

	t0 = ktime_get();
	hmem_process_deferred(host);
	ms = ktime_ms_delta(ktime_get(), t0);
	kunit_info(test, "decision latency with a forever-deferring device: %lld ms", ms);
	KUNIT_EXPECT_LT(test, ms, 1000);
	KUNIT_EXPECT_NULL(test, deferring->pdev->dev.driver);
}

/* While a deferred pass is queued, a rebind of the host is refused. */
static void hmem_probe_busy_while_deferred_pending(struct kunit *test)
{
	struct hmem_platform_device *first = new_host(test);
	struct hmem_platform_device *second = new_host(test);
	struct slow_dev *hung;

	stub_all(test);
	hung = start_probe(test, PROBE_HANG);

	/*
	 * first's deferred pass waits on the hung probe, or waits to start
	 * (its walk may have queued it again behind a run already waiting)...
	 */
	KUNIT_ASSERT_EQ(test, probe_host(first), 0);
	KUNIT_ASSERT_TRUE(test, work_busy(&first->work));
	/* ...so second's is queued behind it on the ordered workqueue. */
	KUNIT_ASSERT_EQ(test, probe_host(second), 0);
	KUNIT_ASSERT_TRUE(test, work_pending(&second->work));
	KUNIT_EXPECT_EQ(test, probe_host(second), -EBUSY);

	complete_all(&hung->release);
	dax_hmem_flush_work();
	KUNIT_EXPECT_FALSE(test, work_busy(&second->work));
	KUNIT_EXPECT_EQ(test, probe_host(second), 0);
}

static int hmem_kunit_suite_init(struct kunit_suite *suite)
{
	int rc = insert_resource(&iomem_resource, &test_window);

	if (rc)
		return rc;
	rc = platform_driver_register(&host_driver);
	if (rc)
		goto err_host;
	rc = platform_driver_register(&slow_driver);
	if (rc)
		goto err_slow;
	return 0;

err_slow:
	platform_driver_unregister(&host_driver);
err_host:
	remove_resource(&test_window);
	return rc;
}

static void hmem_kunit_suite_exit(struct kunit_suite *suite)
{
	platform_driver_unregister(&slow_driver);
	platform_driver_unregister(&host_driver);
	remove_resource(&test_window);
}

static struct kunit_case dax_hmem_defer_cases[] = {
	KUNIT_CASE_PARAM(hmem_decide_table, decide_gen_params),
	KUNIT_CASE(hmem_probe_registers_outside_defers_rest),
	KUNIT_CASE(hmem_deferred_pass_takes_unclaimed_once),
	KUNIT_CASE(hmem_deferred_pass_survives_a_failed_range),
	KUNIT_CASE(hmem_partly_soft_reserved_is_not_taken),
	KUNIT_CASE(hmem_rebind_leaves_no_orphan),
	KUNIT_CASE(hmem_rebind_waits_for_probing),
	KUNIT_CASE_SLOW(hmem_hung_probe_bounded_by_timeout),
	KUNIT_CASE_PARAM(hmem_probe_in_flight_is_waited_for, slow_gen_params),
	KUNIT_CASE(hmem_defer_forever_does_not_hold),
	KUNIT_CASE(hmem_probe_busy_while_deferred_pending),
	{}
};

static struct kunit_suite dax_hmem_defer_suite = {
	.name = "dax_hmem_defer",
	.init = hmem_kunit_init,
	.suite_init = hmem_kunit_suite_init,
	.suite_exit = hmem_kunit_suite_exit,
	.test_cases = dax_hmem_defer_cases,
};

/*
 * Teardown ordering, on the real registration path: an hmem device over a
 * range firmware calls Soft Reserved, with region_idle (its dax device stays
 * empty, so nothing maps the made-up range).
 */
static struct resource td_range = DEFINE_RES_MEM_NAMED(0xe000000000ULL, SZ_256M, "teardown");

static void reset_teardown_params(void *test)
{
	set_hmem_param(test, "region_idle", "N");
}

static bool sr_published(void)
{
	return region_intersects(td_range.start, resource_size(&td_range), IORESOURCE_MEM,
				 IORES_DESC_SOFT_RESERVED) == REGION_INTERSECTS;
}

static bool memregion_in_use(int id)
{
	int got = memregion_alloc(GFP_KERNEL);

	if (got >= 0)
		memregion_free(got);
	/* ida hands out the lowest free id: id is free iff it comes back. */
	return got != id;
}

/* Whether another owner can take the range now (and let it go again). */
static bool slot_free(struct kunit *test)
{
	struct platform_device *parent;
	bool free;

	parent = platform_device_register_simple("dax-hmem-kunit-other", PLATFORM_DEVID_AUTO,
						 NULL, 0);
	if (IS_ERR(parent))
		return false;
	free = alloc_dax_region(&parent->dev, 0, &(struct range) { td_range.start, td_range.end },
				NUMA_NO_NODE, PMD_SIZE, 0);
	platform_device_unregister(parent);
	return free;
}

struct owner_state {
	bool taken;		/* snapshot was taken */
	bool slot_held, sr_published, id_in_use;
};

struct teardown {
	struct kunit *test;
	struct device *hmem;
	int id;
	const struct bus_type *dax_bus;
	struct notifier_block dax_nb, platform_nb;
	struct owner_state dax_gone, hmem_unbound;
};

/*
 * Inside a notifier the slot is only probed where it must be held: an
 * allocation that succeeded there could not be let go again in time.
 */
static void snapshot(struct teardown *td, struct owner_state *st, bool probe_slot)
{
	st->taken = true;
	st->sr_published = sr_published();
	st->id_in_use = memregion_in_use(td->id);
	st->slot_held = probe_slot ? !slot_free(td->test) : false;
}

static int dax_event(struct notifier_block *nb, unsigned long action, void *data)
{
	struct teardown *td = container_of(nb, struct teardown, dax_nb);
	struct device *dev = data;

	if (action == BUS_NOTIFY_DEL_DEVICE && dev->parent == td->hmem && !td->dax_gone.taken)
		snapshot(td, &td->dax_gone, true);
	return NOTIFY_DONE;
}

static int platform_event(struct notifier_block *nb, unsigned long action, void *data)
{
	struct teardown *td = container_of(nb, struct teardown, platform_nb);

	if (action == BUS_NOTIFY_UNBOUND_DRIVER && data == td->hmem)
		snapshot(td, &td->hmem_unbound, false);
	return NOTIFY_DONE;
}

static int match_hmem(struct device *dev, const void *unused)
{
	return !strncmp(dev_name(dev), "hmem.", 5);
}

static struct hmem_platform_device *register_td(struct kunit *test, struct teardown *td,
						bool published)
{
	struct hmem_platform_device *host = new_host(test);
	struct device *dax;

	/* Firmware's Soft Reserved entry for the range, which HMEM checks for. */
	if (region_intersects_soft_reserve(td_range.start, resource_size(&td_range)) !=
	    REGION_INTERSECTS) {
		struct resource *sr = kunit_kzalloc(test, sizeof(*sr), GFP_KERNEL);

		KUNIT_ASSERT_NOT_NULL(test, sr);
		*sr = DEFINE_RES_NAMED_DESC(td_range.start, resource_size(&td_range),
					    "Soft Reserved", IORESOURCE_MEM,
					    IORES_DESC_SOFT_RESERVED);
		KUNIT_ASSERT_EQ(test, insert_resource(&soft_reserve_resource, sr), 0);
		KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, remove_res, sr), 0);
	}

	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, reset_teardown_params, test), 0);
	KUNIT_ASSERT_EQ(test, set_hmem_param(test, "region_idle", "Y"), 0);

	KUNIT_ASSERT_EQ(test, __hmem_register_device(&host->pdev.dev, 0, &td_range), 0);
	td->test = test;
	td->hmem = device_find_child(&host->pdev.dev, NULL, match_hmem);
	KUNIT_ASSERT_NOT_NULL(test, td->hmem);
	put_device(td->hmem);	/* host's devres holds it until teardown */
	td->id = to_platform_device(td->hmem)->id;
	KUNIT_ASSERT_NOT_NULL(test, td->hmem->driver);

	/* What an owner holds: a dax device, the slot, the iomem entry, the id. */
	dax = device_find_any_child(td->hmem);
	KUNIT_ASSERT_NOT_NULL(test, dax);
	td->dax_bus = dax->bus;
	put_device(dax);
	KUNIT_EXPECT_EQ(test, sr_published(), published);
	KUNIT_EXPECT_FALSE(test, slot_free(test));
	KUNIT_EXPECT_TRUE(test, memregion_in_use(td->id));
	return host;
}

/*
 * The host goes away: its dax devices go first (the slot, the entry and the
 * id still held), then the hmem device's slot and "Soft Reserved" entry
 * (the id still held), then the id; only then is the range free for
 * another owner.
 */
static void hmem_teardown_order(struct kunit *test)
{
	struct teardown *td = kunit_kzalloc(test, sizeof(*td), GFP_KERNEL);
	struct hmem_platform_device *host;

	KUNIT_ASSERT_NOT_NULL(test, td);
	host = register_td(test, td, true);
	td->dax_nb.notifier_call = dax_event;
	KUNIT_ASSERT_EQ(test, bus_register_notifier(td->dax_bus, &td->dax_nb), 0);
	td->platform_nb.notifier_call = platform_event;
	KUNIT_ASSERT_EQ(test, bus_register_notifier(&platform_bus_type, &td->platform_nb), 0);

	device_release_driver(&host->pdev.dev);
	bus_unregister_notifier(&platform_bus_type, &td->platform_nb);
	bus_unregister_notifier(td->dax_bus, &td->dax_nb);

	KUNIT_ASSERT_TRUE(test, td->dax_gone.taken);
	KUNIT_EXPECT_TRUE(test, td->dax_gone.slot_held);
	KUNIT_EXPECT_TRUE(test, td->dax_gone.sr_published);
	KUNIT_EXPECT_TRUE(test, td->dax_gone.id_in_use);

	KUNIT_ASSERT_TRUE(test, td->hmem_unbound.taken);
	KUNIT_EXPECT_FALSE(test, td->hmem_unbound.sr_published);
	KUNIT_EXPECT_TRUE(test, td->hmem_unbound.id_in_use);

	KUNIT_EXPECT_FALSE(test, sr_published());
	KUNIT_EXPECT_FALSE(test, memregion_in_use(td->id));
	KUNIT_EXPECT_TRUE(test, slot_free(test));
}

/*
 * Interrupted: the hmem device alone is disabled and enabled again before
 * the host goes. Each step gives back exactly what it took; nothing is
 * left at the end.
 */
static void hmem_teardown_interrupted(struct kunit *test)
{
	struct teardown *td = kunit_kzalloc(test, sizeof(*td), GFP_KERNEL);
	struct hmem_platform_device *host;

	KUNIT_ASSERT_NOT_NULL(test, td);
	host = register_td(test, td, true);

	device_release_driver(td->hmem);
	KUNIT_EXPECT_FALSE(test, sr_published());
	KUNIT_EXPECT_TRUE(test, memregion_in_use(td->id));
	KUNIT_EXPECT_TRUE(test, slot_free(test));

	KUNIT_ASSERT_EQ(test, device_attach(td->hmem), 1);
	KUNIT_EXPECT_TRUE(test, sr_published());
	KUNIT_EXPECT_FALSE(test, slot_free(test));

	device_release_driver(&host->pdev.dev);
	KUNIT_EXPECT_FALSE(test, sr_published());
	KUNIT_EXPECT_FALSE(test, memregion_in_use(td->id));
	KUNIT_EXPECT_TRUE(test, slot_free(test));
}

/*
 * "Soft Reserved" cannot be published over a range something else partly
 * claims in iomem: the hmem device owns the range all the same (its probe
 * does not fail), only without the entry, and gives everything back when it
 * goes. The same range without the conflict first: the entry is published.
 */
static void hmem_publish_conflict_still_owns(struct kunit *test)
{
	struct teardown *td = kunit_kzalloc(test, sizeof(*td), GFP_KERNEL);
	struct resource *straddle = kunit_kzalloc(test, sizeof(*straddle), GFP_KERNEL);
	struct hmem_platform_device *host;

	KUNIT_ASSERT_NOT_NULL(test, td);
	KUNIT_ASSERT_NOT_NULL(test, straddle);
	host = register_td(test, td, true);
	device_release_driver(&host->pdev.dev);
	KUNIT_ASSERT_FALSE(test, sr_published());

	*straddle = DEFINE_RES_MEM_NAMED(td_range.start - SZ_2M, SZ_4M, "dax-hmem-kunit-straddle");
	KUNIT_ASSERT_EQ(test, insert_resource(&iomem_resource, straddle), 0);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, remove_res, straddle), 0);
	host = register_td(test, td, false);

	device_release_driver(&host->pdev.dev);
	KUNIT_EXPECT_FALSE(test, memregion_in_use(td->id));
	KUNIT_EXPECT_TRUE(test, slot_free(test));
}

static int walk_td(struct device *host, walk_hmem_fn fn)
{
	return fn(host, 0, &td_range);
}

static int count_hmem(struct device *dev, void *count)
{
	*(int *)count += match_hmem(dev, NULL);
	return 0;
}

/*
 * A CXL window that appears between the probe walk and the deferred pass
 * (cxl_acpi still adding its windows while another range was deferred):
 * the range the probe walk registered, outside every window then, is in
 * one when the pass walks it, and no committed region contains it. It is
 * HMEM's already: the pass must not register it a second time (an hmem
 * device that loses the DAX Regions arbitration to the first).
 */
static void hmem_late_window_registers_once(struct kunit *test)
{
	struct teardown *td = kunit_kzalloc(test, sizeof(*td), GFP_KERNEL);
	struct resource *window = kunit_kzalloc(test, sizeof(*window), GFP_KERNEL);
	struct hmem_platform_device *host;
	int n = 0;

	KUNIT_ASSERT_NOT_NULL(test, td);
	KUNIT_ASSERT_NOT_NULL(test, window);
	/* What the probe walk does with a range outside every CXL window. */
	KUNIT_ASSERT_EQ(test, hmem_decide(&td_range, false), HMEM_REGISTER);
	host = register_td(test, td, true);

	*window = DEFINE_RES_NAMED_DESC(td_range.start, resource_size(&td_range),
					"CXL Window dax-hmem-kunit-late", IORESOURCE_MEM,
					IORES_DESC_CXL);
	KUNIT_ASSERT_EQ(test, insert_resource(&iomem_resource, window), 0);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, remove_res, window), 0);
	KUNIT_ASSERT_EQ(test, hmem_decide(&td_range, true), HMEM_TAKE_OVER);

	kunit_activate_static_stub(test, hmem_walk, walk_td);
	hmem_process_deferred(host);
	device_for_each_child(&host->pdev.dev, &n, count_hmem);
	KUNIT_EXPECT_EQ_MSG(test, n, 1, "hmem devices over one range");
	KUNIT_EXPECT_NOT_NULL(test, td->hmem->driver);
}

static struct kunit_case dax_hmem_teardown_cases[] = {
	KUNIT_CASE(hmem_teardown_order),
	KUNIT_CASE(hmem_teardown_interrupted),
	KUNIT_CASE(hmem_publish_conflict_still_owns),
	KUNIT_CASE(hmem_late_window_registers_once),
	{}
};

static struct kunit_suite dax_hmem_teardown_suite = {
	.name = "dax_hmem_teardown",
	.init = hmem_kunit_init,
	.suite_init = hmem_kunit_suite_init,
	.suite_exit = hmem_kunit_suite_exit,
	.test_cases = dax_hmem_teardown_cases,
};

kunit_test_suites(&dax_hmem_defer_suite, &dax_hmem_teardown_suite);

MODULE_DESCRIPTION("KUnit tests for dax_hmem's Soft Reserved probe deferral");
MODULE_LICENSE("GPL");
