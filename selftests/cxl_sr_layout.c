// SPDX-License-Identifier: GPL-2.0
/*
 * Every Soft Reserved layout cxl_test models (hmem_layout=), in every load
 * order that decides its owner. The order is chosen, not left to timing:
 * hmem_hold=1 holds dax_hmem's decision (its wait for CXL probing) until
 * the test lets it go, and the memdevs get their driver only when the test
 * runs the coldplug.
 *
 *   region_first    regions commit, then HMEM decides, then dax_cxl
 *                   registers: the order a boot is meant to have
 *   decision_first  HMEM decides before any memdev has a driver (a CXL
 *                   driver that loads late: race R1 of the review)
 *   dax_cxl_first   dax_cxl has registered and claimed the regions when
 *                   HMEM decides (a late hmem_platform device: race R2)
 *   window_late     HMEM decides with cxl_acpi unbound, so no CXL window
 *                   yet: nothing is deferred, and the windows and regions
 *                   arrive over HMEM's ranges (race R5, and the "unload
 *                   cxl_acpi to give everything to dax_hmem" flow)
 *
 * For each: who owns every Soft Reserved byte (HMEM, CXL or nobody), no
 * byte owned twice, one "dax_region resource conflict" and one -12 probe
 * error per lost arbitration, /proc/iomem as a maintainer reads it ("Soft
 * Reserved" exactly where HMEM owns), a CXL region over HMEM's
 * HPA refused with -ERANGE, the owners after dax_hmem and dax_cxl are
 * reloaded in both orders, and, with both unloaded, no new region over HPA
 * that a committed region decodes. Then the dax modules unloaded while the
 * decision is held (held_unload), the auto-delete decoder reset, and random
 * rounds of all the layouts (stress).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "cxl_sr_lib.h"

#define PARAMS		"/sys/module/cxl_test/parameters"
#define CXL_ACPI	"/sys/bus/platform/devices/cxl_acpi.0"
#define HOTADD		CXL_ACPI "/hotadd_memdev"
#define CXL_ACPI_DRV	"/sys/bus/platform/drivers/cxl_acpi"
#define MIB		(1024ULL * 1024)
#define MAX_SR		4
#define CONFLICT	"dax_region resource conflict"
#define PROBE_ENOMEM	"failed with error -12"

enum order { REGION_FIRST, DECISION_FIRST, DAX_CXL_FIRST, WINDOW_LATE };

/*
 * Soft Reserved bytes by owner, in MiB: the dax device that holds them in
 * the DAX Regions arbiter (or none); idle: held by a dax device no driver
 * could bind. yielded: committed regions CXL left alone (no dax_regionN).
 */
struct owners {
	unsigned long long hmem, cxl, none, idle;
	int yielded;
};

FIXTURE(layout) {
};

FIXTURE_VARIANT(layout) {
	const char *layout;
	enum order order;
	bool span;		/* a 256M region above region0 before the decision */
	bool hotadd;		/* cxl_mem.4 arrives on demand */
	bool innocent;		/* a region on a memdev firmware left alone */
	struct owners fresh;	/* after the load, in this order */
	int conflicts;		/* lost arbitrations after the load */
	struct owners reloaded;	/* after dax_hmem + dax_cxl reload: regions all there */
	int reload_conflicts;	/* lost arbitrations after each reload */
	/*
	 * The kernel's known bug, when fresh/reloaded (its outcome, checked as
	 * exactly as any other) leave Soft Reserved bytes nobody can use: the
	 * test then fails on that alone, and XFAIL_ADD() below expects it.
	 */
	const char *bug;
};

/*
 * region: Soft Reserved == region0. CXL owns it when region0 commits
 * first. When HMEM decides first, region0 commits later over HMEM's System
 * RAM (kmem) and leaves it alone: no dax_region0, no message (yielded).
 */
FIXTURE_VARIANT_ADD(layout, region_region_first) {
	.layout = "region", .order = REGION_FIRST, .innocent = true,
	.fresh = { .cxl = 512 }, .reloaded = { .cxl = 512 },
};

FIXTURE_VARIANT_ADD(layout, region_decision_first) {
	.layout = "region", .order = DECISION_FIRST, .innocent = true,
	.fresh = { .hmem = 512, .yielded = 1 }, .reloaded = { .hmem = 512, .yielded = 1 },
};

FIXTURE_VARIANT_ADD(layout, region_dax_cxl_first) {
	.layout = "region", .order = DAX_CXL_FIRST,
	.fresh = { .cxl = 512 }, .reloaded = { .cxl = 512 },
};

/*
 * The window late: HMEM registers the range at once, as outside every
 * window; region0 assembles under the window that arrives and yields.
 */
FIXTURE_VARIANT_ADD(layout, region_window_late) {
	.layout = "region", .order = WINDOW_LATE,
	.fresh = { .hmem = 512, .yielded = 1 }, .reloaded = { .hmem = 512, .yielded = 1 },
};

/*
 * partial: Soft Reserved is all of window 0, region0 half of it. No region
 * contains it, so HMEM takes all of it; but region0's HPA, still in
 * /proc/iomem, keeps kmem from binding HMEM's device (idle): in 7.3 nobody
 * can use the range. Decided first, HMEM's kmem is there before region0,
 * which yields and keeps its HPA out of /proc/iomem (patch "Do not nest an
 * auto-assembled region below a busy resource").
 */
FIXTURE_VARIANT_ADD(layout, partial_region_first) {
	.layout = "partial", .order = REGION_FIRST,
	.fresh = { .hmem = 1024, .idle = 1024 }, .conflicts = 1,
	.reloaded = { .hmem = 1024, .idle = 1024 }, .reload_conflicts = 1,
	.bug = "region0's HPA keeps kmem off HMEM's device: 1024 MiB idle",
};

FIXTURE_VARIANT_ADD(layout, partial_decision_first) {
	.layout = "partial", .order = DECISION_FIRST,
	.fresh = { .hmem = 1024, .yielded = 1 }, .reloaded = { .hmem = 1024, .yielded = 1 },
};

/*
 * ...and with dax_cxl first, region0 keeps its half and HMEM's claim on
 * the whole range loses: the other half has no owner at all (7.3).
 */
FIXTURE_VARIANT_ADD(layout, partial_dax_cxl_first) {
	.layout = "partial", .order = DAX_CXL_FIRST,
	.fresh = { .cxl = 512, .none = 512 }, .conflicts = 1,
	.reloaded = { .hmem = 1024, .idle = 1024 }, .reload_conflicts = 1,
	.bug = "the half region0 leaves has no owner; reloaded, all 1024 MiB idle",
};

/* two_ranges: region0's range goes to CXL, the other range to HMEM. */
FIXTURE_VARIANT_ADD(layout, two_ranges_region_first) {
	.layout = "two_ranges", .order = REGION_FIRST,
	.fresh = { .cxl = 512, .hmem = 512 }, .reloaded = { .cxl = 512, .hmem = 512 },
};

FIXTURE_VARIANT_ADD(layout, two_ranges_decision_first) {
	.layout = "two_ranges", .order = DECISION_FIRST,
	.fresh = { .hmem = 1024, .yielded = 1 }, .reloaded = { .hmem = 1024, .yielded = 1 },
};

FIXTURE_VARIANT_ADD(layout, two_ranges_dax_cxl_first) {
	.layout = "two_ranges", .order = DAX_CXL_FIRST,
	.fresh = { .cxl = 512, .hmem = 512 }, .reloaded = { .cxl = 512, .hmem = 512 },
};

FIXTURE_VARIANT_ADD(layout, two_ranges_window_late) {
	.layout = "two_ranges", .order = WINDOW_LATE,
	.fresh = { .hmem = 1024, .yielded = 1 }, .reloaded = { .hmem = 1024, .yielded = 1 },
};

/*
 * span: one range over region0 and a second region above it. Neither
 * contains it: HMEM takes it, both dax_regions lose, and the regions' HPA
 * keeps kmem off it; with dax_cxl first the regions keep it, HMEM loses.
 */
FIXTURE_VARIANT_ADD(layout, span_region_first) {
	.layout = "span", .order = REGION_FIRST, .span = true,
	.fresh = { .hmem = 768, .idle = 768 }, .conflicts = 2,
	.reloaded = { .hmem = 768, .idle = 768 }, .reload_conflicts = 2,
	.bug = "the regions' HPA keeps kmem off HMEM's device: 768 MiB idle",
};

FIXTURE_VARIANT_ADD(layout, span_dax_cxl_first) {
	.layout = "span", .order = DAX_CXL_FIRST, .span = true,
	.fresh = { .cxl = 768 }, .conflicts = 1,
	.reloaded = { .hmem = 768, .idle = 768 }, .reload_conflicts = 2,
	.bug = "reloaded, HMEM wins the regions' range and kmem cannot bind it: 768 MiB idle",
};

/* outside: no CXL window, nothing to wait for; HMEM's at once. */
FIXTURE_VARIANT_ADD(layout, outside_region_first) {
	.layout = "outside", .order = REGION_FIRST, .innocent = true,
	.fresh = { .hmem = 512 }, .reloaded = { .hmem = 512 },
};

/* no_decoders: all of window 1, which no decoder maps: HMEM's. */
FIXTURE_VARIANT_ADD(layout, no_decoders_region_first) {
	.layout = "no_decoders", .order = REGION_FIRST, .innocent = true,
	.fresh = { .hmem = 2048 }, .reloaded = { .hmem = 2048 },
};

FIXTURE_VARIANT_ADD(layout, no_decoders_decision_first) {
	.layout = "no_decoders", .order = DECISION_FIRST,
	.fresh = { .hmem = 2048 }, .reloaded = { .hmem = 2048 },
};

/*
 * hotadd: region0's second member arrives before the decision (CXL's) or
 * after it (HMEM's, and region0 yields when it commits).
 */
FIXTURE_VARIANT_ADD(layout, hotadd_region_first) {
	.layout = "hotadd", .order = REGION_FIRST, .hotadd = true, .innocent = true,
	.fresh = { .cxl = 512 }, .reloaded = { .cxl = 512 },
};

FIXTURE_VARIANT_ADD(layout, hotadd_decision_first) {
	.layout = "hotadd", .order = DECISION_FIRST, .hotadd = true, .innocent = true,
	.fresh = { .hmem = 512, .yielded = 1 }, .reloaded = { .hmem = 512, .yielded = 1 },
};

static int param_int(const char *name)
{
	return (int)read_u64(PARAMS "/%s", name);
}

static bool held(void)
{
	return param_int("hmem_held") == 1;
}

static int walks_wanted;

static bool walked(void)
{
	return param_int("hmem_walks") >= walks_wanted;
}

/* A walk after the one walked() waited for: HMEM has decided again. */
static bool walked_again(void)
{
	return param_int("hmem_walks") > walks_wanted;
}

static bool dax_cxl_loaded(void)
{
	return module_loaded("dax_cxl");
}

/* Committed regions with no dax_regionN: CXL left their range alone. */
static int yielded_regions(void)
{
	glob_t g;
	size_t i;
	int n = 0;

	if (glob(CXL_DEVS "/region*", 0, NULL, &g))
		return 0;
	for (i = 0; i < g.gl_pathc; i++) {
		const char *name = strrchr(g.gl_pathv[i], '/') + 1;

		n += region_committed(name) && !exists(CXL_DEVS "/%s/dax_%s", name, name);
	}
	globfree(&g);
	return n;
}

/* The owners of the Soft Reserved bytes now; false if a byte has two. */
/* The layout's Soft Reserved ranges, [start, end], as cxl_test published them. */
static unsigned long long sr[MAX_SR][2];
static int nr_sr;

static bool owners_now(struct owners *o)
{
	struct dax_dev devs[MAX_DAX];
	unsigned long long total = 0;
	int i, j, n = list_dax(devs);

	memset(o, 0, sizeof(*o));
	for (j = 0; j < nr_sr; j++)
		total += sr[j][1] - sr[j][0] + 1;
	for (i = 0; i < n; i++) {
		unsigned long long *bytes;

		if (!devs[i].size || devs[i].owner == OWNER_NONE)
			continue;
		bytes = devs[i].owner == OWNER_HMEM ? &o->hmem : &o->cxl;
		for (j = 0; j < nr_sr; j++) {
			unsigned long long s = devs[i].start, e = devs[i].start + devs[i].size - 1;

			if (s < sr[j][0])
				s = sr[j][0];
			if (e > sr[j][1])
				e = sr[j][1];
			if (s > e)
				continue;
			*bytes += e - s + 1;
			if (!devs[i].bound)
				o->idle += e - s + 1;
		}
	}
	o->yielded = yielded_regions();
	if (o->hmem + o->cxl > total)
		return false;
	o->none = (total - o->hmem - o->cxl) / MIB;
	o->hmem /= MIB;
	o->cxl /= MIB;
	o->idle /= MIB;
	return dax_ranges_disjoint();
}

/* HMEM has every Soft Reserved byte, and a driver on each of its devices. */
static bool hmem_owns_all_sr(void)
{
	struct owners o;

	return owners_now(&o) && !o.cxl && !o.none && !o.idle;
}

static struct owners want;
static int want_conflicts;

static bool settled(void)
{
	struct owners o;

	return owners_now(&o) && o.hmem == want.hmem && o.cxl == want.cxl &&
	       o.none == want.none && o.idle == want.idle && o.yielded == want.yielded &&
	       kmsg_count(CONFLICT) >= want_conflicts;
}

/* /proc/iomem from the first CXL window on: how the claims nest. */
static void dump_iomem(struct __test_metadata *_metadata)
{
	char line[256];
	bool on = false;
	FILE *f = fopen("/proc/iomem", "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		on |= !!strstr(line, "CXL Window");
		if (on)
			TH_LOG("iomem: %s", line);
	}
	fclose(f);
}

/* What the log of a failed check needs: every dax device and region. */
static void dump_state(struct __test_metadata *_metadata)
{
	struct dax_dev devs[MAX_DAX];
	static const char * const who[] = { "none", "CXL", "HMEM" };
	glob_t g;
	size_t k;
	int i, n = list_dax(devs);

	for (i = 0; i < n; i++)
		TH_LOG("%s: %s %#llx+%llu MiB %s", devs[i].name, who[devs[i].owner],
		       devs[i].start, devs[i].size / MIB, devs[i].bound ? "bound" : "no driver");
	if (glob(CXL_DEVS "/region*", 0, NULL, &g))
		return;
	for (k = 0; k < g.gl_pathc; k++) {
		const char *name = strrchr(g.gl_pathv[k], '/') + 1;

		TH_LOG("%s: %#llx+%llu MiB commit=%d dax_%s=%s", name,
		       read_u64(CXL_DEVS "/%s/resource", name),
		       read_u64(CXL_DEVS "/%s/size", name) / MIB, region_committed(name), name,
		       exists(CXL_DEVS "/%s/dax_%s/driver", name, name) ? "bound" :
		       exists(CXL_DEVS "/%s/dax_%s", name, name) ? "unbound" : "none");
	}
	globfree(&g);
	dump_iomem(_metadata);
}

/* The layout's ranges, as cxl_test published them. */
static int read_sr(void)
{
	char buf[512], *line, *save = NULL;
	int n = 0;
	FILE *f = fopen(PARAMS "/hmem_sr", "r");

	if (!f)
		return 0;
	buf[fread(buf, 1, sizeof(buf) - 1, f)] = '\0';
	fclose(f);
	for (line = strtok_r(buf, "\n", &save); line && n < MAX_SR;
	     line = strtok_r(NULL, "\n", &save))
		if (sscanf(line, "%llx-%llx", &sr[n][0], &sr[n][1]) == 2)
			n++;
	nr_sr = n;
	return n;
}

static void check_owners(struct __test_metadata *_metadata, const struct owners *w,
			 int conflicts, const char *when)
{
	struct owners o = { 0 };

	want = *w;
	want_conflicts = conflicts;
	if (!wait_for(settled, SETTLE_MS))
		dump_state(_metadata);
	EXPECT_TRUE(owners_now(&o))
		TH_LOG("%s: a byte of Soft Reserved has two owners", when);
	EXPECT_EQ(w->hmem, o.hmem) TH_LOG("%s: MiB owned by HMEM", when);
	EXPECT_EQ(w->cxl, o.cxl) TH_LOG("%s: MiB owned by CXL", when);
	EXPECT_EQ(w->none, o.none) TH_LOG("%s: MiB owned by nobody", when);
	EXPECT_EQ(w->idle, o.idle) TH_LOG("%s: MiB of dax devices no driver could bind", when);
	EXPECT_EQ(w->yielded, o.yielded)
		TH_LOG("%s: committed regions with no dax region", when);
	/* Every lost arbitration says so once, and its probe error is there. */
	EXPECT_EQ(conflicts, kmsg_count(CONFLICT)) TH_LOG("%s: \"%s\" messages", when, CONFLICT);
	EXPECT_EQ(conflicts, kmsg_count(PROBE_ENOMEM)) TH_LOG("%s: \"%s\" messages", when,
							      PROBE_ENOMEM);
}

/*
 * Every region's HPA in /proc/iomem sits in its window (or in a "Soft
 * Reserved" HMEM published there), never below a range some driver claimed:
 * that driver would free it with the region's entry below it.
 */
static bool regions_nest_in_windows(char *bad, size_t len)
{
	char line[256], parent[8][64] = { { 0 } };
	FILE *f = fopen("/proc/iomem", "r");
	bool ok = true;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		int depth = strspn(line, " ") / 2;
		char *name = strstr(line, " : ");

		if (!name || depth >= 8)
			continue;
		name += 3;
		name[strcspn(name, "\n")] = '\0';
		snprintf(parent[depth], sizeof(parent[depth]), "%s", name);
		if (strncmp(name, "region", 6) || !depth)
			continue;
		if (strncmp(parent[depth - 1], "CXL Window", 10) &&
		    strcmp(parent[depth - 1], "Soft Reserved")) {
			snprintf(bad, len, "%s below %s", name, parent[depth - 1]);
			ok = false;
		}
	}
	fclose(f);
	return ok;
}

/* Every CXL dax device has its driver: its range is claimed in /proc/iomem. */
static bool cxl_all_bound(void)
{
	return owns_bound(OWNER_CXL, count_owned(OWNER_CXL));
}

/*
 * /proc/iomem: CXL's dax devices inside their region; "Soft Reserved"
 * exactly where HMEM owns, and nowhere else.
 */
static void check_iomem(struct __test_metadata *_metadata)
{
	struct dax_dev devs[MAX_DAX];
	char path[PATH_MAX], real[PATH_MAX], bad[160];
	int i, n, hmem = 0;

	/*
	 * The owners settled on the Soft Reserved bytes only: a CXL dax device
	 * elsewhere (an innocent region's) may still be waiting for kmem.
	 */
	EXPECT_TRUE(wait_for(cxl_all_bound, SETTLE_MS)) dump_state(_metadata);
	n = list_dax(devs);

	for (i = 0; i < n; i++) {
		if (!devs[i].size)
			continue;
		if (devs[i].owner == OWNER_CXL) {
			char *region;

			snprintf(path, sizeof(path), DAX_DEVS "/%s", devs[i].name);
			ASSERT_NE(NULL, realpath(path, real));
			region = strstr(real, "/region");
			ASSERT_NE(NULL, region);
			region[strcspn(region + 1, "/") + 1] = '\0';
			EXPECT_TRUE(iomem_nested(region + 1, devs[i].name))
				TH_LOG("%s is not inside %s in /proc/iomem", devs[i].name,
				       region + 1);
		} else if (devs[i].owner == OWNER_HMEM) {
			hmem++;
			EXPECT_TRUE(iomem_has("Soft Reserved", devs[i].start,
					      devs[i].start + devs[i].size - 1))
				TH_LOG("no \"Soft Reserved\" over HMEM's %s", devs[i].name);
		}
	}
	EXPECT_EQ(hmem, iomem_count("Soft Reserved"));
	EXPECT_TRUE(regions_nest_in_windows(bad, sizeof(bad))) {
		TH_LOG("/proc/iomem: %s", bad);
		dump_iomem(_metadata);
	}
}

#define MAX_CHILD	32
#define SZ_256M		(256 * MIB)

struct iomem_child {
	unsigned long long s, e;
	char name[64];
};

/*
 * The direct children of the "CXL Window N" entry that spans exactly [s, e]
 * (by name: HMEM's "Soft Reserved" can sit above the window over the same
 * range, and a dax device over all of it below).
 */
static int iomem_children(unsigned long long s, unsigned long long e,
			  struct iomem_child *out, int max)
{
	unsigned long long cs, ce;
	int pdepth = -1, n = 0;
	char line[512];
	FILE *f = fopen("/proc/iomem", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		int depth = strspn(line, " ") / 2;
		char *name = strstr(line, " : ");

		if (!name || sscanf(line, " %llx-%llx", &cs, &ce) != 2)
			continue;
		name += 3;
		name[strcspn(name, "\n")] = '\0';
		if (pdepth >= 0 && depth <= pdepth)
			break;
		if (pdepth >= 0 && depth == pdepth + 1 && n < max) {
			out[n].s = cs;
			out[n].e = ce;
			snprintf(out[n++].name, sizeof(out->name), "%s", name);
		}
		if (pdepth < 0 && cs == s && ce == e && !strncmp(name, "CXL Window", 10))
			pdepth = depth;
	}
	fclose(f);
	return n;
}

/*
 * Whether alloc_hpa() could place `size` bytes in the window [ws, we]:
 * alloc_free_mem_region() tries 256M-aligned addresses and takes the first
 * clear of every direct child of the window. Children over [hs, he] (HMEM's
 * dax device and its published "Soft Reserved") count as free with `no_hmem`.
 */
static bool hpa_fits(unsigned long long ws, unsigned long long we,
		     const struct iomem_child *c, int n, unsigned long long size,
		     bool no_hmem, unsigned long long hs, unsigned long long he)
{
	unsigned long long a;
	int i;

	for (a = (ws + SZ_256M - 1) & ~(SZ_256M - 1); a + size - 1 <= we; a += SZ_256M) {
		for (i = 0; i < n; i++) {
			if (no_hmem && c[i].s >= hs && c[i].e <= he &&
			    (!strncmp(c[i].name, "dax", 3) || !strcmp(c[i].name, "Soft Reserved")))
				continue;
			if (c[i].s <= a + size - 1 && c[i].e >= a)
				break;
		}
		if (i == n)
			return true;
	}
	return false;
}

/*
 * A region over HPA that HMEM owns cannot get it, and leaves nothing behind.
 * The size asked for is the largest that would fit in the window were HMEM's
 * claim gone, and only then: the refusal is HMEM's doing, not region0's or
 * another region's in the same window.
 */
static void check_hmem_hpa_refused(struct __test_metadata *_metadata)
{
	struct dax_dev devs[MAX_DAX];
	struct iomem_child c[MAX_CHILD];
	char root[32], region[32], buf[16];
	int i, k, n = list_dax(devs);

	for (i = 0; i < n; i++) {
		unsigned long long ws, we, gran, size, hs, he;

		if (devs[i].owner != OWNER_HMEM || !devs[i].size ||
		    !cxl_dev_holding("decoder0.*", "start", devs[i].start, root, sizeof(root)))
			continue;
		ws = read_u64(CXL_DEVS "/%s/start", root);
		we = ws + read_u64(CXL_DEVS "/%s/size", root) - 1;
		read_line(buf, sizeof(buf), CXL_DEVS "/%s/interleave_ways", root);
		gran = SZ_256M * strtoull(buf, NULL, 0);
		hs = devs[i].start;
		he = hs + devs[i].size - 1;
		k = iomem_children(ws, we, c, MAX_CHILD);
		for (size = (we - ws + 1) / gran * gran; size; size -= gran)
			if (hpa_fits(ws, we, c, k, size, true, hs, he))
				break;
		if (!size || hpa_fits(ws, we, c, k, size, false, hs, he)) {
			/* HMEM's claim is not what limits this window. */
			TH_LOG("%s: %llu MiB fit with or without %s: no size tells its claim apart",
			       root, size / MIB, devs[i].name);
			dump_iomem(_metadata);
			continue;
		}
		EXPECT_EQ(-ERANGE, try_region_size(root, size, region, sizeof(region)))
			TH_LOG("a %llu MiB region in %s fits only over %s: it got HPA", size / MIB,
			       root, devs[i].name);
		EXPECT_EQ(0, write_str(region, CXL_DEVS "/%s/delete_region", root));
		EXPECT_FALSE(exists(CXL_DEVS "/%s", region)) TH_LOG("half-made %s left", region);

		/* The control: the largest size that fits beside the claim is granted. */
		while ((size -= gran) && !hpa_fits(ws, we, c, k, size, false, hs, he))
			;
		if (!size)
			continue;
		EXPECT_EQ(0, try_region_size(root, size, region, sizeof(region)))
			TH_LOG("a %llu MiB region fits beside %s in %s, yet got no HPA", size / MIB,
			       devs[i].name, root);
		EXPECT_EQ(0, write_str(region, CXL_DEVS "/%s/delete_region", root));
	}
}

/* Every fixture's teardown: the whole stack unloaded, whatever the case left. */
static void unload_all(struct __test_metadata *_metadata)
{
	const char *left;

	unload_stack();
	left = stack_left();
	EXPECT_TRUE(!left) TH_LOG("%s did not unload", left);
}

static int hold(bool on)
{
	return write_str(on ? "1" : "0", PARAMS "/hmem_hold");
}

/*
 * Load the stack with the variant's layout, in the variant's order, up to
 * the point where HMEM has decided. The layout fixture's setup, and one
 * round of the stress test (struct _fixture_variant_layout is what
 * FIXTURE_VARIANT(layout) names).
 */
static void load_in_order(struct __test_metadata *_metadata,
			  const struct _fixture_variant_layout *variant)
{
	bool deferred = strcmp(variant->layout, "outside") != 0;
	bool alone = variant->order == DECISION_FIRST || variant->order == WINDOW_LATE;
	char root[32], region[32];

	unload_stack();
	ASSERT_TRUE(stack_unloaded()) TH_LOG("%s still loaded from before", stack_left());
	kmsg_mark();

	if (variant->order == REGION_FIRST)
		ASSERT_EQ(0, sh("modprobe dax_hmem"));
	if (variant->order == DAX_CXL_FIRST) {
		ASSERT_EQ(0, sh("modprobe dax_cxl"));
		ASSERT_TRUE(wait_for(dax_cxl_driver_registered, DRIVER_BOUND_MS));
	}
	ASSERT_EQ(0, sh("modprobe cxl_test hmem_layout=%s%s", variant->layout,
			alone ? "" : " hmem_hold=1"));
	ASSERT_LT(0, read_sr()) TH_LOG("cxl_test published no Soft Reserved range");

	if (variant->order == WINDOW_LATE) {
		ASSERT_EQ(0, write_str("cxl_acpi.0", CXL_ACPI_DRV "/unbind"));
		ASSERT_EQ(0, iomem_count("CXL Window 0")) dump_iomem(_metadata);
	}
	if (alone) {
		/* No memdev has a driver yet: HMEM decides on no region at all. */
		ASSERT_EQ(0, sh("modprobe dax_hmem"));
		ASSERT_EQ(0, sh("modprobe dax_cxl"));
		ASSERT_TRUE(wait_for(dax_cxl_driver_registered, SETTLE_MS));
		EXPECT_EQ(0, count_glob(CXL_DEVS "/region*")) TH_LOG("a region before coldplug");
		/*
		 * With no region, HMEM takes every range; its devices get their
		 * driver (kmem claims the ranges) before any memdev has one.
		 */
		ASSERT_EQ(0, sh("modprobe kmem && modprobe device_dax"));
		ASSERT_TRUE(wait_for(hmem_owns_all_sr, SETTLE_MS)) dump_state(_metadata);
		if (variant->order == WINDOW_LATE) {
			/* Nothing was in a window: no deferred pass walked again. */
			EXPECT_EQ(1, param_int("hmem_walks"));
			ASSERT_EQ(0, write_str("cxl_acpi.0", CXL_ACPI_DRV "/bind"));
			ASSERT_EQ(1, iomem_count("CXL Window 0")) dump_iomem(_metadata);
		}
		coldplug();
		if (variant->hotadd) {
			ASSERT_EQ(0, write_str("1", HOTADD));
			ASSERT_TRUE(wait_for(region0_committed, SETTLE_MS));
		}
		return;
	}

	/* HMEM's decision is held (nothing to hold when no range is in a window). */
	if (deferred) {
		ASSERT_TRUE(wait_for(held, SETTLE_MS))
			TH_LOG("hmem_held=%d", param_int("hmem_held"));
	} else {
		EXPECT_EQ(0, param_int("hmem_held"));
	}
	walks_wanted = param_int("hmem_walks") + (deferred ? 1 : 0);
	coldplug();
	if (variant->hotadd)
		ASSERT_EQ(0, write_str("1", HOTADD));
	ASSERT_TRUE(wait_for(region0_committed, SETTLE_MS));
	if (variant->span) {
		ASSERT_TRUE(region_root_decoder("region0", root, sizeof(root)));
		ASSERT_EQ(0, make_ram_region(root, 256 * MIB, region, sizeof(region)))
			TH_LOG("%s", region_err);
	}
	if (variant->order == DAX_CXL_FIRST) {
		ASSERT_TRUE(wait_for(variant->span ? cxl_owns_two : cxl_owns_one, SETTLE_MS));
	} else if (deferred) {
		/* dax_cxl is loaded for region0, but registers only after the decision. */
		ASSERT_TRUE(wait_for(dax_cxl_loaded, SETTLE_MS));
		ASSERT_TRUE(held());
		EXPECT_FALSE(wait_for(dax_cxl_driver_registered, 2000))
			TH_LOG("dax_cxl registered while HMEM's decision was pending");
	}
	ASSERT_EQ(0, hold(false));
	ASSERT_TRUE(wait_for(walked, SETTLE_MS));
	if (variant->order == REGION_FIRST)
		ASSERT_TRUE(wait_for(dax_cxl_driver_registered, SETTLE_MS));
}

static long long t_setup;

FIXTURE_SETUP(layout)
{
	t_setup = now_ms();
	if (!cxl_test_available())
		SKIP(return, "cxl_test is not installed for this kernel");
	load_in_order(_metadata, variant);
}

FIXTURE_TEARDOWN(layout)
{
	if (module_loaded("cxl_test"))
		hold(false);
	unload_all(_metadata);
}

/* A region firmware knew nothing of: never HMEM's business, reloads included. */
static bool innocent_region(const char *region, unsigned long long start)
{
	return region_committed(region) && read_u64(CXL_DEVS "/%s/resource", region) == start;
}

/* Soft Reserved MiB now held by nobody, or by a dax device no driver could bind. */
static unsigned long long unusable_now(void)
{
	struct owners o;

	owners_now(&o);
	return o.none + o.idle;
}

/*
 * What a maintainer wants of every layout: each Soft Reserved byte ends with
 * an owner whose driver holds it. Where the variant names the kernel's bug
 * and every other check held, that bug decides the verdict: name it (the
 * harness prints it after XFAIL, or after XPASS once the bug is gone; a
 * failure on any other check has no reason).
 */
static void expect_usable(struct __test_metadata *_metadata,
			  const struct _fixture_variant_layout *variant,
			  unsigned long long unusable)
{
	if (variant->bug)
		XFAIL_REASON(variant->bug);
	EXPECT_EQ(0ULL, unusable) TH_LOG("%llu MiB of Soft Reserved nobody can use", unusable);
}

#define MAX_HPA	16

/* The committed regions: name, root decoder and HPA. */
struct hpa {
	char region[32], root[32];
	unsigned long long s, e;
};

static int committed_hpa(struct hpa *out, int max)
{
	glob_t g;
	size_t i;
	int n = 0;

	if (glob(CXL_DEVS "/region*", 0, NULL, &g))
		return 0;
	for (i = 0; i < g.gl_pathc && n < max; i++) {
		const char *name = strrchr(g.gl_pathv[i], '/') + 1;
		struct hpa *h = &out[n];

		if (!region_committed(name) ||
		    !region_root_decoder(name, h->root, sizeof(h->root)))
			continue;
		snprintf(h->region, sizeof(h->region), "%s", name);
		h->s = read_u64(CXL_DEVS "/%s/resource", name);
		h->e = h->s + read_u64(CXL_DEVS "/%s/size", name) - 1;
		n++;
	}
	globfree(&g);
	return n;
}

/*
 * With neither dax driver loaded, nothing but the regions themselves holds
 * HPA in the windows: new regions may fill every free byte of a window, but
 * never the HPA that a committed region's decoders decode, whether or not
 * that region got into /proc/iomem when it assembled (one that found kmem
 * over its range could not). Fill each window that has one, largest
 * requests first, and check every grant.
 */
static void check_new_hpa_clear(struct __test_metadata *_metadata)
{
	struct hpa c[MAX_HPA];
	char made[MAX_HPA][32], buf[16];
	int i, j, k, n = committed_hpa(c, MAX_HPA), m = 0;

	for (i = 0; i < n; i++) {
		unsigned long long gran, size, s, e;

		for (j = 0; j < i && strcmp(c[j].root, c[i].root); j++)
			;
		if (j < i)
			continue;	/* window already filled */
		read_line(buf, sizeof(buf), CXL_DEVS "/%s/interleave_ways", c[i].root);
		gran = SZ_256M * strtoull(buf, NULL, 0);
		size = read_u64(CXL_DEVS "/%s/size", c[i].root) / gran * gran;
		while (size && m < MAX_HPA) {
			if (try_region_size(c[i].root, size, made[m], sizeof(made[m]))) {
				if (*made[m] && exists(CXL_DEVS "/%s", made[m]))
					write_str(made[m], CXL_DEVS "/%s/delete_region", c[i].root);
				size = size / 2 / gran * gran;
				continue;
			}
			s = read_u64(CXL_DEVS "/%s/resource", made[m]);
			e = s + size - 1;
			/* Braces: the harness runs TH_LOG() after the EXPECT statement. */
			for (k = 0; k < n; k++) {
				EXPECT_TRUE(e < c[k].s || s > c[k].e)
					TH_LOG("new %s got %llx-%llx, over %s (%llx-%llx)",
					       made[m], s, e, c[k].region, c[k].s, c[k].e);
			}
			m++;
		}
		for (k = 0; k < m; k++)
			EXPECT_EQ(0, write_str(made[k], CXL_DEVS "/%s/delete_region", c[i].root));
		m = 0;
	}
}

/* A 256M region made through sysfs in region0's window; its HPA. */
static unsigned long long make_beside_region0(struct __test_metadata *_metadata,
					      char *region, size_t len)
{
	char root[32];

	ASSERT_TRUE(region_root_decoder("region0", root, sizeof(root)));
	ASSERT_EQ(0, make_ram_region(root, 256 * MIB, region, len)) TH_LOG("%s", region_err);
	return read_u64(CXL_DEVS "/%s/resource", region);
}

static bool dax_modules_gone(void)
{
	return !module_loaded("dax_cxl") && !module_loaded("dax_hmem");
}

TEST_F_TIMEOUT(layout, owners, 600)
{
	char innocent[32] = "";
	unsigned long long istart = 0, unusable;
	int round;

	check_owners(_metadata, &variant->fresh, variant->conflicts, "after the load");
	unusable = unusable_now();
	check_iomem(_metadata);
	check_hmem_hpa_refused(_metadata);

	if (variant->innocent)
		istart = make_beside_region0(_metadata, innocent, sizeof(innocent));

	/* Reloaded, each way round: the owners of a load with every region there. */
	for (round = 0; round < 2; round++) {
		const char *when = round ? "after modprobe dax_cxl alone" :
					   "after modprobe dax_hmem, then dax_cxl";

		ASSERT_EQ(0, sh("modprobe -r dax_cxl dax_hmem"));
		ASSERT_TRUE(wait_for(dax_modules_gone, DRIVER_BOUND_MS));
		EXPECT_EQ(0, count_owned(OWNER_HMEM));
		EXPECT_EQ(0, count_owned(OWNER_CXL));
		if (*innocent)
			EXPECT_TRUE(innocent_region(innocent, istart)) TH_LOG("%s: %s went", when,
									      innocent);
		kmsg_mark();
		if (!round)
			ASSERT_EQ(0, sh("modprobe dax_hmem"));
		ASSERT_EQ(0, sh("modprobe dax_cxl"));
		ASSERT_TRUE(wait_for(dax_cxl_driver_registered, SETTLE_MS));
		check_owners(_metadata, &variant->reloaded, variant->reload_conflicts, when);
		if (unusable_now() > unusable)
			unusable = unusable_now();
		check_iomem(_metadata);
		if (*innocent)
			EXPECT_TRUE(innocent_region(innocent, istart)) TH_LOG("%s: %s went", when,
									      innocent);
	}
	ASSERT_EQ(0, sh("modprobe -r dax_cxl dax_hmem"));
	ASSERT_TRUE(wait_for(dax_modules_gone, DRIVER_BOUND_MS));
	check_new_hpa_clear(_metadata);
	expect_usable(_metadata, variant, unusable);
	TH_LOG("%s: %lld ms from load to the last check", variant->layout, now_ms() - t_setup);
}

/* The kernel's known bugs (the variants' .bug): each must still fail, on that alone. */
XFAIL_ADD(layout, partial_region_first, owners);
XFAIL_ADD(layout, partial_dax_cxl_first, owners);
XFAIL_ADD(layout, span_region_first, owners);
XFAIL_ADD(layout, span_dax_cxl_first, owners);

/*
 * Seed point (g), as 7.3 has it: deleting an auto-assembled region resets
 * its decoders, so firmware's programming is gone with it; the Soft Reserved
 * range HMEM left to it then has no owner. cxl_test's registry stands in
 * for firmware across a re-enumeration (cxl_acpi unbind and bind): region0
 * comes back only when decoder_reset_preserve_registry kept the programming.
 */
FIXTURE(auto_delete) {
	int decoders;
};

FIXTURE_VARIANT(auto_delete) {
	bool preserve;
};

FIXTURE_VARIANT_ADD(auto_delete, decoders_reset) {
	.preserve = false,
};

FIXTURE_VARIANT_ADD(auto_delete, registry_preserved) {
	.preserve = true,
};

static const struct _fixture_variant_layout cxl_owns_region0 = {
	.layout = "region", .order = REGION_FIRST, .fresh = { .cxl = 512 },
};

/* A load in a layout's order, settled on its owners; the decoders it made. */
static int load_settled(struct __test_metadata *_metadata,
			const struct _fixture_variant_layout *load)
{
	load_in_order(_metadata, load);
	check_owners(_metadata, &load->fresh, 0, "after the load");
	return count_glob(CXL_DEVS "/decoder*");
}

FIXTURE_SETUP(auto_delete)
{
	if (!cxl_test_available())
		SKIP(return, "cxl_test is not installed for this kernel");
	self->decoders = load_settled(_metadata, &cxl_owns_region0);
}

FIXTURE_TEARDOWN(auto_delete)
{
	unload_all(_metadata);
}

static int decoders_now;

static bool decoders_back(void)
{
	return count_glob(CXL_DEVS "/decoder*") == decoders_now;
}

/* cxl_acpi unbound and bound: what the decoders hold now is what comes back. */
static void reenumerate(struct __test_metadata *_metadata, int decoders)
{
	ASSERT_EQ(0, write_str("cxl_acpi.0", CXL_ACPI_DRV "/unbind"));
	ASSERT_EQ(0, write_str("cxl_acpi.0", CXL_ACPI_DRV "/bind"));
	decoders_now = decoders;
	ASSERT_TRUE(wait_for(decoders_back, SETTLE_MS))
		TH_LOG("%d decoders after the rebind, %d before",
		       count_glob(CXL_DEVS "/decoder*"), decoders);
}

TEST_F_TIMEOUT(auto_delete, rediscovery, 300)
{
	const struct owners nobody = { .none = 512 }, cxl = { .cxl = 512 };
	char root[32];

	ASSERT_TRUE(region_root_decoder("region0", root, sizeof(root)));
	ASSERT_EQ(0, write_str(variant->preserve ? "1" : "0",
			       CXL_ACPI "/decoder_reset_preserve_registry"));
	ASSERT_EQ(0, write_str("region0", CXL_DEVS "/%s/delete_region", root));
	EXPECT_FALSE(exists(CXL_DEVS "/region0"));
	check_owners(_metadata, &nobody, 0, "after delete_region");

	reenumerate(_metadata, self->decoders);
	if (variant->preserve) {
		ASSERT_TRUE(wait_for(region0_committed, SETTLE_MS))
			TH_LOG("region0 not rediscovered from the preserved programming");
		check_owners(_metadata, &cxl, 0, "after the rebind");
	} else {
		EXPECT_FALSE(wait_for(region0_committed, 5000))
			TH_LOG("region0 came back although its decoders were reset");
		check_owners(_metadata, &nobody, 0, "after the rebind");
	}
}

/*
 * Hot-remove: region0's second member (cxl_mem.4) goes, while CXL or HMEM
 * owns the Soft Reserved range, and comes back. Its removal tears region0
 * down (decoders reset, as any cxl_mem unbind does): a range CXL owned
 * then has no owner, and HMEM, whose decision is made, must not take up
 * memory whose device is gone; one HMEM owns stays HMEM's. The device
 * back, and re-enumerated with firmware's programming (cxl_test's
 * preserved decoder registry standing in for firmware), region0
 * assembles again: CXL's DAX region gets the range back (the slot its
 * first one held was let go), or it yields to HMEM again.
 */
FIXTURE(hot_remove) {
	int decoders;
};

FIXTURE_VARIANT(hot_remove) {
	const struct _fixture_variant_layout *load;
	struct owners removed;	/* with cxl_mem.4 gone */
};

static const struct _fixture_variant_layout hmem_owns_region0 = {
	.layout = "region", .order = DECISION_FIRST, .fresh = { .hmem = 512, .yielded = 1 },
};

FIXTURE_VARIANT_ADD(hot_remove, cxl_owned) {
	.load = &cxl_owns_region0,
	.removed = { .none = 512 },
};

FIXTURE_VARIANT_ADD(hot_remove, hmem_owned) {
	.load = &hmem_owns_region0,
	.removed = { .hmem = 512 },
};

#define MOCK_MEM_DRV	"/sys/bus/platform/drivers/cxl_mock_mem"

FIXTURE_SETUP(hot_remove)
{
	if (!cxl_test_available())
		SKIP(return, "cxl_test is not installed for this kernel");
	self->decoders = load_settled(_metadata, variant->load);
}

FIXTURE_TEARDOWN(hot_remove)
{
	unload_all(_metadata);
}

static bool mem4_gone(void)
{
	return !count_glob("/sys/bus/platform/devices/cxl_mem.4/mem*") && !region0_committed();
}

static bool mem4_back(void)
{
	return count_glob("/sys/bus/platform/devices/cxl_mem.4/mem*/driver") == 1;
}

TEST_F_TIMEOUT(hot_remove, memdev_out_and_back, 300)
{
	ASSERT_EQ(0, write_str("1", CXL_ACPI "/decoder_reset_preserve_registry"));
	ASSERT_EQ(0, write_str("cxl_mem.4", MOCK_MEM_DRV "/unbind"));
	ASSERT_TRUE(wait_for(mem4_gone, SETTLE_MS)) dump_state(_metadata);
	check_owners(_metadata, &variant->removed, 0, "with cxl_mem.4 gone");
	EXPECT_EQ(variant->removed.hmem ? 1 : 0, count_glob("/sys/bus/platform/devices/hmem.*"))
		TH_LOG("HMEM registered a range after the memdev behind it went");

	ASSERT_EQ(0, write_str("cxl_mem.4", MOCK_MEM_DRV "/bind"));
	ASSERT_TRUE(wait_for(mem4_back, SETTLE_MS)) dump_state(_metadata);
	reenumerate(_metadata, self->decoders);
	ASSERT_TRUE(wait_for(region0_committed, SETTLE_MS))
		TH_LOG("region0 not rediscovered from the preserved programming");
	check_owners(_metadata, &variant->load->fresh, 0, "with cxl_mem.4 back");
	check_iomem(_metadata);
}

/*
 * Bounded stress: CXL_SR_STRESS_ROUNDS loads of the whole stack (default
 * 3), each in a layout and order picked at random among the layout
 * fixture's variants (seed: CXL_SR_STRESS_SEED, else the clock, logged),
 * each giving that variant's owners after the load. Leaks and splats are
 * the kernel log's to show (kmemleak is scanned when the VM ends).
 */
/*
 * An accelerator (Type-2) region over Soft Reserved: cxl_test's type2_test
 * auto-assembles the mock accelerator's 512M region at the start of window
 * 0, exactly where hmem_layout=region puts the range. The region drives
 * that memory with no dax region: HMEM must leave it alone, when it first
 * decides and after a dax_hmem reload (no hmem device, no dax device, so
 * kmem can never online it as System RAM).
 */
FIXTURE(accel) {
};

FIXTURE_SETUP(accel)
{
	if (!cxl_test_available())
		SKIP(return, "cxl_test is not installed for this kernel");
	unload_stack();
	ASSERT_TRUE(stack_unloaded()) TH_LOG("%s still loaded from before", stack_left());
	kmsg_mark();
	ASSERT_EQ(0, sh("modprobe dax_hmem"));
	ASSERT_EQ(0, sh("modprobe cxl_test type2_test=1 hmem_layout=region hmem_hold=1"));
	ASSERT_LT(0, read_sr()) TH_LOG("cxl_test published no Soft Reserved range");
	ASSERT_TRUE(wait_for(held, SETTLE_MS)) TH_LOG("hmem_held=%d", param_int("hmem_held"));
	walks_wanted = param_int("hmem_walks") + 1;
	coldplug();
	ASSERT_TRUE(wait_for(region0_committed, SETTLE_MS)) dump_state(_metadata);
	ASSERT_EQ(0, hold(false));
	ASSERT_TRUE(wait_for(walked, SETTLE_MS));
}

FIXTURE_TEARDOWN(accel)
{
	if (module_loaded("cxl_test"))
		hold(false);
	unload_all(_metadata);
}

static void expect_not_hmem(struct __test_metadata *_metadata, const char *when)
{
	EXPECT_EQ(0, count_glob("/sys/bus/platform/devices/hmem.*"))
		TH_LOG("%s: HMEM registered the accelerator's range", when);
	EXPECT_EQ(0, count_owned(OWNER_HMEM)) TH_LOG("%s: HMEM owns it", when);
	EXPECT_EQ(0, count_owned(OWNER_CXL)) TH_LOG("%s: a dax device over it", when);
	EXPECT_TRUE(region0_committed()) TH_LOG("%s: the accelerator's region went", when);
}

TEST_F_TIMEOUT(accel, range_stays_with_the_accelerator, 300)
{
	expect_not_hmem(_metadata, "after the decision");

	/* Reloaded: HMEM decides again at once, with the region there. */
	ASSERT_EQ(0, sh("modprobe -r -q dax_cxl; modprobe -r dax_hmem && modprobe dax_hmem"));
	ASSERT_TRUE(wait_for(walked_again, SETTLE_MS));
	expect_not_hmem(_metadata, "after a dax_hmem reload");
}

/*
 * Race R7 of the review: a dax module unloaded while HMEM's decision is
 * pending. dax_hmem's exit unbinds hmem_platform.1 under the held work,
 * which must then do nothing; dax_cxl's exit waits in flush_work() for a
 * registration that waits for the decision. Either unload must complete
 * once the decision goes on, leave no device behind, and a reload must
 * decide afresh: region0 is CXL's (layout "region").
 */
FIXTURE(held_unload) {
};

FIXTURE_VARIANT(held_unload) {
	const char *module;
};

FIXTURE_VARIANT_ADD(held_unload, dax_hmem) {
	.module = "dax_hmem",
};

FIXTURE_VARIANT_ADD(held_unload, dax_cxl) {
	.module = "dax_cxl",
};

#define UNLOAD_RC	"/tmp/cxl_sr_unload.rc"

/*
 * Poll cond() without loading modules for new devices the way wait_for()
 * does (it stands in for udev): between the unload and its checks nothing
 * may bring dax_hmem back (loading dax_cxl for a new cxl_dax_region would).
 */
static bool poll_for(bool (*cond)(void), int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	while (!cond()) {
		if (now_ms() >= end)
			return false;
		usleep(50 * 1000);
	}
	return true;
}

/*
 * Layout "region" with HMEM's decision held; with `region0`, region0 has
 * committed and dax_cxl is loaded, waiting for the decision to register.
 */
static void load_held(struct __test_metadata *_metadata, bool region0)
{
	unload_stack();
	ASSERT_TRUE(stack_unloaded()) TH_LOG("%s still loaded from before", stack_left());
	kmsg_mark();
	ASSERT_EQ(0, sh("modprobe dax_hmem"));
	ASSERT_EQ(0, sh("modprobe cxl_test hmem_layout=region hmem_hold=1"));
	ASSERT_TRUE(poll_for(held, SETTLE_MS)) TH_LOG("hmem_held=%d", param_int("hmem_held"));
	if (region0) {
		/* region0 commits while held: the decision, when it comes, is CXL's. */
		coldplug();
		ASSERT_TRUE(wait_for(region0_committed, SETTLE_MS));
		ASSERT_EQ(0, sh("modprobe dax_cxl"));
	}
}

/* dax_cxl, loaded, waits for the held decision to register its driver. */
static void expect_dax_cxl_waits(struct __test_metadata *_metadata)
{
	EXPECT_FALSE(wait_for(dax_cxl_driver_registered, 2000))
		TH_LOG("dax_cxl registered while HMEM's decision was pending");
}

FIXTURE_SETUP(held_unload)
{
	if (!cxl_test_available())
		SKIP(return, "cxl_test is not installed for this kernel");
	unlink(UNLOAD_RC);
	/* With dax_hmem to unload, nothing may use it: no coldplug yet (dax_cxl). */
	load_held(_metadata, !strcmp(variant->module, "dax_cxl"));
}

FIXTURE_TEARDOWN(held_unload)
{
	if (module_loaded("cxl_test"))
		hold(false);
	sh("while [ ! -e " UNLOAD_RC " ] && pgrep -x modprobe >/dev/null; do sleep 1; done");
	unlink(UNLOAD_RC);
	unload_all(_metadata);
}

static bool unload_done(void)
{
	return exists(UNLOAD_RC);
}

TEST_F_TIMEOUT(held_unload, then_decide, 300)
{
	char rc[16];

	if (!strcmp(variant->module, "dax_cxl"))
		expect_dax_cxl_waits(_metadata);
	ASSERT_EQ(0, sh("(modprobe -r %s; echo $? > " UNLOAD_RC ".new; mv " UNLOAD_RC ".new "
			UNLOAD_RC ") >/dev/null 2>&1 &", variant->module));
	/* The decision is held: whatever the unload does now, it does with it pending. */
	poll_for(unload_done, 2000);
	ASSERT_TRUE(held()) TH_LOG("the hold ended before the unload had run into it");
	ASSERT_EQ(0, hold(false));
	ASSERT_TRUE(poll_for(unload_done, UNLOAD_MS))
		TH_LOG("modprobe -r %s still running %d ms after the decision went on",
		       variant->module, UNLOAD_MS);
	read_line(rc, sizeof(rc), UNLOAD_RC);
	EXPECT_STREQ("0", rc) TH_LOG("modprobe -r %s failed", variant->module);
	EXPECT_FALSE(module_loaded(variant->module));
	EXPECT_EQ(0, count_glob("/sys/bus/platform/devices/hmem.*"))
		TH_LOG("an hmem device outlived the unload");
	EXPECT_EQ(0, count_owned(OWNER_HMEM));
	EXPECT_EQ(0, count_owned(OWNER_CXL));
	EXPECT_FALSE(kmsg_has("Unexpected driver unregister"));

	/*
	 * Reloaded, with the decision held until region0 has committed (the
	 * coldplug loads dax_hmem for hmem_platform.1 at once): the decision is
	 * made afresh, and it is CXL's.
	 */
	ASSERT_EQ(0, hold(true));
	coldplug();
	ASSERT_TRUE(wait_for(region0_committed, SETTLE_MS));
	ASSERT_EQ(0, hold(false));
	ASSERT_EQ(0, sh("modprobe dax_hmem && modprobe dax_cxl"));
	EXPECT_TRUE(wait_for(cxl_owns_one, SETTLE_MS)) dump_state(_metadata);
	EXPECT_EQ(0, count_owned(OWNER_HMEM));
}

/*
 * A region made with `cxl create-region`'s sysfs steps while HMEM's
 * decision is held (region0 committed, dax_cxl waiting to register): it
 * commits, outside the Soft Reserved range, and stays without a DAX region
 * until the decision is made; then CXL owns both regions, HMEM nothing.
 */
FIXTURE(held_create) {
};

FIXTURE_SETUP(held_create)
{
	if (!cxl_test_available())
		SKIP(return, "cxl_test is not installed for this kernel");
	load_held(_metadata, true);
}

FIXTURE_TEARDOWN(held_create)
{
	unload_all(_metadata);
}

static char made[32];

static bool made_has_dax_region(void)
{
	return exists(CXL_DEVS "/%s/dax_%s/driver", made, made);
}

TEST_F_TIMEOUT(held_create, region_then_decide, 300)
{
	const struct owners cxl = { .cxl = 512 };
	unsigned long long start;

	expect_dax_cxl_waits(_metadata);
	ASSERT_EQ(1, read_sr());
	start = make_beside_region0(_metadata, made, sizeof(made));
	EXPECT_TRUE(start > sr[0][1] || start + 256 * MIB <= sr[0][0])
		TH_LOG("%s got %#llx, in the Soft Reserved range", made, start);
	EXPECT_FALSE(wait_for(made_has_dax_region, 2000))
		TH_LOG("%s has a DAX region while HMEM's decision is pending", made);
	EXPECT_TRUE(held()) TH_LOG("the decision was made before the region was");

	ASSERT_EQ(0, hold(false));
	ASSERT_TRUE(wait_for(dax_cxl_driver_registered, SETTLE_MS));
	check_owners(_metadata, &cxl, 0, "after the decision");
	EXPECT_TRUE(wait_for(cxl_owns_two, SETTLE_MS)) dump_state(_metadata);
	EXPECT_TRUE(region_committed(made));
	EXPECT_TRUE(made_has_dax_region()) dump_state(_metadata);
	EXPECT_EQ(0, count_glob("/sys/bus/platform/devices/hmem.*"));
}

FIXTURE(stress) {
};

FIXTURE_SETUP(stress)
{
	if (!cxl_test_available())
		SKIP(return, "cxl_test is not installed for this kernel");
}

FIXTURE_TEARDOWN(stress)
{
	if (module_loaded("cxl_test"))
		hold(false);
	unload_all(_metadata);
}

TEST_F_TIMEOUT(stress, rounds, 1800)
{
	const char *env_rounds = getenv("CXL_SR_STRESS_ROUNDS");
	const char *env_seed = getenv("CXL_SR_STRESS_SEED");
	struct __fixture_variant_metadata *v, *all[64];
	unsigned int seed = env_seed ? strtoul(env_seed, NULL, 0) : (unsigned int)time(NULL);
	int rounds = env_rounds ? atoi(env_rounds) : 3;
	int n = 0, r;

	for (v = _layout_fixture_object.variant; v && n < 64; v = v->next)
		all[n++] = v;
	ASSERT_LT(0, n);
	TH_LOG("%d rounds, seed %u (CXL_SR_STRESS_SEED)", rounds, seed);
	srand(seed);
	for (r = 0; r < rounds; r++) {
		const struct _fixture_variant_layout *lv;
		char when[96];

		v = all[rand() % n];
		lv = v->data;
		snprintf(when, sizeof(when), "round %d (%s)", r + 1, v->name);
		load_in_order(_metadata, lv);
		check_owners(_metadata, &lv->fresh, lv->conflicts, when);
		ASSERT_TRUE(_metadata->exit_code == KSFT_PASS) TH_LOG("%s: owners differ", when);
		hold(false);
		unload_stack();
		ASSERT_FALSE(module_loaded("cxl_test"))
			TH_LOG("%s: the stack did not unload", when);
	}
}

TEST_HARNESS_MAIN
