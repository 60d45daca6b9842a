// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for the "DAX Regions" arbitration in alloc_dax_region().
 *
 * dax_hmem and dax_cxl may both try to create a dax_region over the same
 * Soft Reserved range. alloc_dax_region() lets exactly one of them win by
 * inserting every dax_region into a private resource tree: the loser's
 * request_resource() fails and it gets NULL. These tests drive the real
 * alloc_dax_region() with test-owned parent devices, so a region is torn
 * down by the same devres action that tears it down on driver unbind.
 *
 * The tree itself is private to drivers/dax/bus.c; everything below observes
 * it the way a driver does, through which allocations succeed.
 */
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/device.h>
#include <linux/kthread.h>
#include <linux/pgtable.h>
#include <linux/platform_device.h>
#include <linux/prandom.h>
#include <linux/range.h>
#include <linux/sizes.h>

#include "../bus.h"
#include "../dax-private.h"

/*
 * Far above any address a test machine maps, so that no real dax_region
 * (an hmem or CXL range of the machine running the tests) is in the way.
 */
#define DAX_KUNIT_BASE		SZ_64T
#define DAX_KUNIT_ALIGN		PMD_SIZE
#define DAX_KUNIT_NID		0

static struct range dax_kunit_range(u64 offset, u64 size)
{
	return (struct range) {
		.start = DAX_KUNIT_BASE + offset,
		.end = DAX_KUNIT_BASE + offset + size - 1,
	};
}

KUNIT_DEFINE_ACTION_WRAPPER(dax_kunit_unregister_pdev, platform_device_unregister,
			    struct platform_device *);

/*
 * A parent device that no driver ever binds: its devres, and so the
 * dax_region's teardown action, is released exactly when the test
 * unregisters it. (Devices on the KUnit bus bind to any KUnit driver, so
 * unregistering one of them would unbind, and tear down, the others.)
 */
static struct device *dax_kunit_parent(struct kunit *test)
{
	struct platform_device *pdev;
	int rc;

	pdev = platform_device_register_simple("dax-regions-kunit",
					       PLATFORM_DEVID_AUTO, NULL, 0);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, pdev);
	rc = kunit_add_action_or_reset(test, dax_kunit_unregister_pdev, pdev);
	KUNIT_ASSERT_EQ(test, rc, 0);
	return &pdev->dev;
}

/* Unregister a parent now rather than at the end of the test. */
static void dax_kunit_unregister(struct kunit *test, struct device *dev)
{
	kunit_release_action(test, dax_kunit_unregister_pdev, to_platform_device(dev));
}

static struct dax_region *dax_kunit_alloc(struct device *parent, int id,
					  struct range range)
{
	return alloc_dax_region(parent, id, &range, DAX_KUNIT_NID,
				DAX_KUNIT_ALIGN, 0);
}

/*
 * Whether [offset, offset + size) is free in the DAX Regions tree: a probe
 * allocation over it succeeds. The probe is released again before returning.
 */
static bool dax_kunit_range_free(struct kunit *test, u64 offset, u64 size)
{
	struct device *probe = dax_kunit_parent(test);
	bool free;

	free = dax_kunit_alloc(probe, 0, dax_kunit_range(offset, size));
	dax_kunit_unregister(test, probe);
	return free;
}

/*
 * Two parents ask for the same range: the first wins, the second gets NULL,
 * and the winner's region is left exactly as it was.
 */
static void dax_regions_same_range_twice(struct kunit *test)
{
	struct device *a = dax_kunit_parent(test);
	struct device *b = dax_kunit_parent(test);
	struct range range = dax_kunit_range(0, 4 * DAX_KUNIT_ALIGN);
	struct dax_region *winner, *loser;

	winner = dax_kunit_alloc(a, 1, range);
	KUNIT_ASSERT_NOT_NULL(test, winner);

	loser = dax_kunit_alloc(b, 2, range);
	KUNIT_EXPECT_NULL(test, loser);

	KUNIT_EXPECT_PTR_EQ(test, dev_get_drvdata(a), (void *)winner);
	KUNIT_EXPECT_PTR_EQ(test, winner->dev, a);
	KUNIT_EXPECT_EQ(test, winner->id, 1);
	KUNIT_EXPECT_EQ(test, winner->res.start, range.start);
	KUNIT_EXPECT_EQ(test, winner->res.end, range.end);
	KUNIT_EXPECT_NOT_NULL(test, winner->res.parent);
	KUNIT_EXPECT_FALSE(test, dax_kunit_range_free(test, 0, 4 * DAX_KUNIT_ALIGN));
}

struct dax_regions_overlap_case {
	const char *desc;
	/* second range, in units of DAX_KUNIT_ALIGN from the base */
	u64 offset;
	u64 size;
	bool second_wins;
};

/* The first region always covers PMDs [2, 6) of the test window. */
static const struct dax_regions_overlap_case dax_regions_overlap_cases[] = {
	{ "overlap_last_pmd", 5, 4, false },
	{ "overlap_first_pmd", 0, 3, false },
	{ "nested", 3, 1, false },
	{ "enclosing", 1, 6, false },
	{ "identical", 2, 4, false },
	{ "adjacent_above", 6, 4, true },
	{ "adjacent_below", 0, 2, true },
};

KUNIT_ARRAY_PARAM_DESC(dax_regions_overlap, dax_regions_overlap_cases, desc);

/*
 * Any overlap, even one PMD at either end, loses to the region already in the
 * tree; ranges that merely touch it are independent.
 */
static void dax_regions_overlap(struct kunit *test)
{
	const struct dax_regions_overlap_case *c = test->param_value;
	struct device *a = dax_kunit_parent(test);
	struct device *b = dax_kunit_parent(test);
	struct dax_region *first, *second;

	first = dax_kunit_alloc(a, 1, dax_kunit_range(2 * DAX_KUNIT_ALIGN,
						      4 * DAX_KUNIT_ALIGN));
	KUNIT_ASSERT_NOT_NULL(test, first);

	second = dax_kunit_alloc(b, 2, dax_kunit_range(c->offset * DAX_KUNIT_ALIGN,
						       c->size * DAX_KUNIT_ALIGN));
	if (c->second_wins)
		KUNIT_EXPECT_NOT_NULL(test, second);
	else
		KUNIT_EXPECT_NULL(test, second);

	/* The first region keeps its slot either way. */
	KUNIT_EXPECT_FALSE(test, dax_kunit_range_free(test, 2 * DAX_KUNIT_ALIGN,
						      DAX_KUNIT_ALIGN));
}

/*
 * Unregistering the winner runs its devres teardown, which must give the
 * range back so that the loser can take it over on a retry (the handoff from
 * one driver to the other).
 */
static void dax_regions_release_on_unregister(struct kunit *test)
{
	struct device *a = dax_kunit_parent(test);
	struct device *b = dax_kunit_parent(test);
	struct range range = dax_kunit_range(0, 2 * DAX_KUNIT_ALIGN);

	KUNIT_ASSERT_NOT_NULL(test, dax_kunit_alloc(a, 1, range));
	KUNIT_ASSERT_NULL(test, dax_kunit_alloc(b, 2, range));

	dax_kunit_unregister(test, a);

	/*
	 * A driver core probe failure clears drvdata before any retry; do the
	 * same so that this case depends only on the slot being released.
	 */
	dev_set_drvdata(b, NULL);
	KUNIT_EXPECT_NOT_NULL(test, dax_kunit_alloc(b, 2, range));
}

/*
 * A failed allocation must not leave the parent's drvdata pointing at the
 * dax_region it just freed: the next alloc_dax_region() on that parent would
 * refuse to run, and any reader of drvdata would touch freed memory.
 */
static void dax_regions_failure_clears_drvdata(struct kunit *test)
{
	struct device *a = dax_kunit_parent(test);
	struct device *b = dax_kunit_parent(test);
	struct range range = dax_kunit_range(0, DAX_KUNIT_ALIGN);

	KUNIT_ASSERT_NOT_NULL(test, dax_kunit_alloc(a, 1, range));
	KUNIT_ASSERT_NULL(test, dax_kunit_alloc(b, 2, range));

	KUNIT_EXPECT_NULL(test, dev_get_drvdata(b));
}

struct dax_regions_misaligned_case {
	const char *desc;
	u64 offset;
	u64 size;
};

static const struct dax_regions_misaligned_case dax_regions_misaligned_cases[] = {
	{ "start_not_aligned", PAGE_SIZE, DAX_KUNIT_ALIGN },
	{ "size_not_aligned", 0, DAX_KUNIT_ALIGN + PAGE_SIZE },
	{ "size_below_align", 0, DAX_KUNIT_ALIGN / 2 },
};

KUNIT_ARRAY_PARAM_DESC(dax_regions_misaligned, dax_regions_misaligned_cases, desc);

/*
 * A range that is not aligned to the region's alignment is refused before it
 * reaches the tree: nothing is left behind, neither a slot nor drvdata.
 */
static void dax_regions_misaligned(struct kunit *test)
{
	const struct dax_regions_misaligned_case *c = test->param_value;
	struct device *a = dax_kunit_parent(test);

	struct dax_region *region;

	region = dax_kunit_alloc(a, 1, dax_kunit_range(c->offset, c->size));
	KUNIT_EXPECT_NULL(test, region);
	KUNIT_EXPECT_NULL(test, dev_get_drvdata(a));

	/* The aligned range around it is still free, for the same parent. */
	region = dax_kunit_alloc(a, 1, dax_kunit_range(0, 2 * DAX_KUNIT_ALIGN));
	KUNIT_EXPECT_NOT_NULL(test, region);
}

#define DAX_KUNIT_MANY	64

/*
 * Many regions, released in a random order, leave no trace: afterwards one
 * region covering all of them fits again.
 */
static void dax_regions_many_random_order(struct kunit *test)
{
	struct device **parents;
	unsigned int order[DAX_KUNIT_MANY];
	struct rnd_state rnd;
	u64 span = 2 * DAX_KUNIT_MANY * DAX_KUNIT_ALIGN;
	int i;

	parents = kunit_kcalloc(test, DAX_KUNIT_MANY, sizeof(*parents), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, parents);

	for (i = 0; i < DAX_KUNIT_MANY; i++) {
		struct range range;

		parents[i] = dax_kunit_parent(test);
		/* one PMD each, with a one-PMD hole after it */
		range = dax_kunit_range(2 * i * DAX_KUNIT_ALIGN, DAX_KUNIT_ALIGN);
		KUNIT_ASSERT_NOT_NULL(test, dax_kunit_alloc(parents[i], i, range));
		order[i] = i;
	}
	KUNIT_ASSERT_FALSE(test, dax_kunit_range_free(test, 0, span));

	/* Fisher-Yates, seeded: the same order on every run */
	prandom_seed_state(&rnd, 0x5043584c);
	for (i = DAX_KUNIT_MANY - 1; i > 0; i--) {
		unsigned int j = prandom_u32_state(&rnd) % (i + 1);

		swap(order[i], order[j]);
	}

	for (i = 0; i < DAX_KUNIT_MANY; i++) {
		unsigned int n = order[i];
		bool freed;

		dax_kunit_unregister(test, parents[n]);
		freed = dax_kunit_range_free(test, 2 * n * DAX_KUNIT_ALIGN, DAX_KUNIT_ALIGN);
		KUNIT_EXPECT_TRUE_MSG(test, freed, "slot %u still taken after its release", n);
	}

	KUNIT_EXPECT_TRUE(test, dax_kunit_range_free(test, 0, span));
}

#define DAX_KUNIT_RACERS	8

struct dax_kunit_racer {
	struct device *parent;
	struct completion *start;
	struct completion done;
	struct dax_region *result;
	int id;
};

static int dax_kunit_race_fn(void *data)
{
	struct dax_kunit_racer *r = data;

	wait_for_completion(r->start);
	r->result = dax_kunit_alloc(r->parent, r->id,
				    dax_kunit_range(0, 8 * DAX_KUNIT_ALIGN));
	complete(&r->done);
	return 0;
}

/*
 * The arbitration is atomic: parents racing for one range from several
 * threads end with exactly one winner and every other caller told NULL.
 */
static void dax_regions_race_one_winner(struct kunit *test)
{
	struct dax_kunit_racer *racers;
	DECLARE_COMPLETION_ONSTACK(start);
	int i, started, winners = 0;

	racers = kunit_kcalloc(test, DAX_KUNIT_RACERS, sizeof(*racers), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, racers);

	for (i = 0; i < DAX_KUNIT_RACERS; i++) {
		racers[i].parent = dax_kunit_parent(test);
		racers[i].start = &start;
		racers[i].id = i;
		init_completion(&racers[i].done);
	}

	for (started = 0; started < DAX_KUNIT_RACERS; started++) {
		struct task_struct *task;

		task = kthread_run(dax_kunit_race_fn, &racers[started],
				   "dax-kunit-race/%d", started);
		if (IS_ERR(task))
			break;
	}

	/* Release every racer that started before asserting anything. */
	complete_all(&start);
	for (i = 0; i < started; i++)
		wait_for_completion(&racers[i].done);
	KUNIT_ASSERT_EQ(test, started, DAX_KUNIT_RACERS);

	for (i = 0; i < DAX_KUNIT_RACERS; i++) {
		if (racers[i].result) {
			winners++;
			KUNIT_EXPECT_PTR_EQ(test, racers[i].result->dev,
					    racers[i].parent);
		}
	}
	KUNIT_EXPECT_EQ(test, winners, 1);
	KUNIT_EXPECT_FALSE(test, dax_kunit_range_free(test, 0, 8 * DAX_KUNIT_ALIGN));
}

static struct kunit_case dax_regions_test_cases[] = {
	KUNIT_CASE(dax_regions_same_range_twice),
	KUNIT_CASE_PARAM(dax_regions_overlap, dax_regions_overlap_gen_params),
	KUNIT_CASE(dax_regions_release_on_unregister),
	KUNIT_CASE(dax_regions_failure_clears_drvdata),
	KUNIT_CASE_PARAM(dax_regions_misaligned, dax_regions_misaligned_gen_params),
	KUNIT_CASE(dax_regions_many_random_order),
	KUNIT_CASE(dax_regions_race_one_winner),
	{}
};

static struct kunit_suite dax_regions_test_suite = {
	.name = "dax_regions",
	.test_cases = dax_regions_test_cases,
};

kunit_test_suite(dax_regions_test_suite);

MODULE_DESCRIPTION("KUnit tests for the DAX Regions arbitration in alloc_dax_region()");
MODULE_LICENSE("GPL");
