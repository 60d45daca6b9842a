// SPDX-License-Identifier: GPL-2.0
/*
 * Who owns Soft Reserved memory that lies in a CXL window: dax_hmem or
 * dax_cxl. Each fixture variant loads cxl_test with one layout, waits until
 * the topology has settled (by polling state), and checks the outcome the
 * way a user sees it: sysfs, /proc/iomem, the cxl tool.
 *
 * Needs cxl_test (tools/testing/cxl) built for the running kernel, and a
 * boot with memhp_default_state=offline: the mock ranges are not real
 * memory, so kmem must never online them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "cxl_sr_lib.h"

FIXTURE(cxl_sr) {
};

FIXTURE_VARIANT(cxl_sr) {
	const char *params;
};

/* a. Soft Reserved == the committed auto-region: CXL owns it. */
FIXTURE_VARIANT_ADD(cxl_sr, sr_equals_committed_region) {
	.params = "hmem_test=1",
};

/* b. The auto-region never commits: HMEM takes the Soft Reserved range over. */
FIXTURE_VARIANT_ADD(cxl_sr, autoassembly_fails) {
	.params = "hmem_test=1 fail_autoassemble=1",
};

/* c. No Soft Reserved at all: nothing waits on a deferral. */
FIXTURE_VARIANT_ADD(cxl_sr, no_soft_reserved) {
	.params = "",
};

FIXTURE_SETUP(cxl_sr)
{
	if (!cxl_test_available())
		SKIP(return, "cxl_test is not installed for this kernel");
	unload_stack();
	ASSERT_TRUE(stack_unloaded()) TH_LOG("%s still loaded from before", stack_left());
	ASSERT_EQ(0, sh("modprobe cxl_test %s", variant->params))
		TH_LOG("modprobe cxl_test %s failed", variant->params);
	coldplug();
}

FIXTURE_TEARDOWN(cxl_sr)
{
	unload_stack();
	EXPECT_FALSE(module_loaded("cxl_test"));
	EXPECT_FALSE(module_loaded("dax_hmem"));
	EXPECT_FALSE(module_loaded("cxl_core"));
	EXPECT_FALSE(exists("/sys/bus/platform/devices/cxl_acpi.0"));
	EXPECT_FALSE(exists(HMEM_TEST_DEV));
}

/*
 * region0 is CXL's: committed, its dax device bound (within SETTLE_MS) and
 * nested under it in /proc/iomem, and HMEM owns nothing.
 */
static void expect_cxl_owns_region0(struct __test_metadata *_metadata)
{
	struct dax_dev devs[MAX_DAX];
	char buf[64];
	int i, n;

	ASSERT_TRUE(wait_for(cxl_owns_one, SETTLE_MS))
		TH_LOG("region0 commit=%s, CXL dax devices bound: %d",
		       read_line(buf, sizeof(buf), CXL_DEVS "/region0/commit"),
		       count_owned(OWNER_CXL));
	EXPECT_EQ(0, count_owned(OWNER_HMEM));
	n = list_dax(devs);
	for (i = 0; i < n; i++) {
		if (devs[i].owner == OWNER_CXL)
			EXPECT_TRUE(iomem_nested("region0", devs[i].name))
				TH_LOG("%s not nested under region0 in /proc/iomem", devs[i].name);
	}
}

TEST_F_TIMEOUT(cxl_sr, owner, 300)
{
	struct dax_dev devs[MAX_DAX];
	int i, n;

	if (!strcmp(variant->params, "hmem_test=1")) {
		expect_cxl_owns_region0(_metadata);
		EXPECT_EQ(0, count_glob(HMEM_TEST_DEV "/hmem.*"));
		EXPECT_TRUE(iomem_nested("CXL Window 0", "region0"));
		EXPECT_TRUE(dax_ranges_disjoint());
	} else if (strstr(variant->params, "fail_autoassemble")) {
		unsigned long long rstart, rsize;

		ASSERT_TRUE(wait_for(hmem_owns_one, SETTLE_MS))
			TH_LOG("HMEM dax devices: %d", count_owned(OWNER_HMEM));
		EXPECT_FALSE(region0_committed());
		EXPECT_EQ(0, count_owned(OWNER_CXL));
		EXPECT_EQ(1, count_glob(HMEM_TEST_DEV "/hmem.*"));
		EXPECT_TRUE(dax_ranges_disjoint());
		/* The Soft Reserved range is the auto-region's HPA range. */
		rstart = read_u64(CXL_DEVS "/%s/resource", "region0");
		rsize = read_u64(CXL_DEVS "/%s/size", "region0");
		n = list_dax(devs);
		for (i = 0; i < n; i++) {
			if (devs[i].owner != OWNER_HMEM)
				continue;
			EXPECT_EQ(rstart, devs[i].start);
			EXPECT_EQ(rsize, devs[i].size);
		}
	} else {
		long long t0;

		/*
		 * dax_cxl registers its driver from a work item that first waits
		 * for HMEM's deferred decisions; with no Soft Reserved there is
		 * none, so registration must follow the module load promptly.
		 */
		EXPECT_FALSE(exists(HMEM_TEST_DEV));
		ASSERT_EQ(0, sh("modprobe -r dax_cxl"));
		ASSERT_FALSE(dax_cxl_driver_registered());
		t0 = now_ms();
		ASSERT_EQ(0, sh("modprobe dax_cxl"));
		ASSERT_TRUE(wait_for(dax_cxl_driver_registered, DRIVER_BOUND_MS))
			TH_LOG("cxl_dax_region driver not registered within %d ms of modprobe",
			       DRIVER_BOUND_MS);
		TH_LOG("cxl_dax_region driver registered %lld ms after modprobe dax_cxl",
		       now_ms() - t0);
		/*
		 * Registered is not enough: a dax region probe that kept
		 * deferring would pass that. The committed auto-region must end
		 * with its dax device, bound, inside its HPA.
		 */
		expect_cxl_owns_region0(_metadata);
	}
}

/*
 * HMEM owns the Soft Reserved range (the auto-region failed to assemble).
 * The stale, never-committed region0 is deleted first, so that what stands
 * in the way of a new region is HMEM's claim alone.
 */
FIXTURE(hmem_owned) {
	char decoder[32];
	char memdev[32];	/* a memdev region0 needed: HMEM's range is its HPA */
	struct dax_dev hmem;
};

/* The memdev of an endpoint decoder: its port's uport. */
static bool decoder_memdev(const char *decoder, char *out, size_t len)
{
	char link[PATH_MAX], port[PATH_MAX];
	const char *name;
	ssize_t n;

	snprintf(link, sizeof(link), CXL_DEVS "/%s/..", decoder);
	if (!realpath(link, port))
		return false;
	strncat(port, "/uport", sizeof(port) - strlen(port) - 1);
	n = readlink(port, link, sizeof(link) - 1);
	if (n <= 0)
		return false;
	link[n] = '\0';
	name = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
	if (strlen(name) >= len)
		return false;
	memcpy(out, name, strlen(name) + 1);
	return !strncmp(out, "mem", 3);
}

/* The memdev behind region0's first target. */
static bool region0_memdev(char *out, size_t len)
{
	char target[32];

	if (!read_line(target, sizeof(target), CXL_DEVS "/region0/target0")[0])
		return false;
	return decoder_memdev(target, out, len);
}

FIXTURE_SETUP(hmem_owned)
{
	struct dax_dev devs[MAX_DAX];
	int i, n;

	if (!cxl_test_available())
		SKIP(return, "cxl_test is not installed for this kernel");
	unload_stack();
	ASSERT_EQ(0, sh("modprobe cxl_test hmem_test=1 fail_autoassemble=1"));
	coldplug();
	ASSERT_TRUE(wait_for(hmem_owns_one, SETTLE_MS));
	n = list_dax(devs);
	for (i = 0; i < n; i++)
		if (devs[i].owner == OWNER_HMEM)
			self->hmem = devs[i];
	ASSERT_TRUE(region_root_decoder("region0", self->decoder, sizeof(self->decoder)));
	ASSERT_TRUE(region0_memdev(self->memdev, sizeof(self->memdev)))
		TH_LOG("no memdev behind region0's target0");
	ASSERT_EQ(0, write_str("region0", CXL_DEVS "/%s/delete_region", self->decoder));
	ASSERT_FALSE(exists(CXL_DEVS "/region0"));
}

FIXTURE_TEARDOWN(hmem_owned)
{
	unload_stack();
	EXPECT_FALSE(module_loaded("cxl_test"));
}

/*
 * HMEM owns `was`'s range through one dax device, bound; the same device
 * (name) unless a reload or rebind made it anew.
 */
static void expect_hmem_owns(struct __test_metadata *_metadata, const struct dax_dev *was,
			     bool same_device)
{
	struct dax_dev devs[MAX_DAX];
	int i, n = list_dax(devs);

	EXPECT_EQ(1, count_owned(OWNER_HMEM));
	for (i = 0; i < n; i++) {
		if (devs[i].owner != OWNER_HMEM)
			continue;
		if (same_device)
			EXPECT_STREQ(was->name, devs[i].name);
		EXPECT_EQ(was->start, devs[i].start);
		EXPECT_EQ(was->size, devs[i].size);
		EXPECT_TRUE(devs[i].bound);
	}
}

/*
 * d. The seed: once HMEM owns the HPA range, a region over it cannot get its
 * HPA (-ERANGE, "Numerical result out of range"), while the free part of the
 * same window still can; and nothing of HMEM's changes.
 */
TEST_F_TIMEOUT(hmem_owned, create_region_sysfs, 300)
{
	unsigned long long window = read_u64(CXL_DEVS "/%s/size", self->decoder);
	unsigned long long free_start;
	char region[32], size[32];

	ASSERT_GT(window, self->hmem.size);
	EXPECT_EQ(-ERANGE, try_region_size(self->decoder, window, region, sizeof(region)));
	EXPECT_EQ(0, write_str(region, CXL_DEVS "/%s/delete_region", self->decoder));
	EXPECT_FALSE(exists(CXL_DEVS "/%s", region)) TH_LOG("half-made %s left behind", region);

	EXPECT_EQ(0, try_region_size(self->decoder, window - self->hmem.size, region,
				     sizeof(region)));
	free_start = read_u64(CXL_DEVS "/%s/resource", region);
	EXPECT_NE(self->hmem.start, free_start);
	/* Size 0 gives the HPA back to the window, and the same size fits again. */
	EXPECT_EQ(0, write_str("0", CXL_DEVS "/%s/size", region));
	EXPECT_EQ(0, read_u64(CXL_DEVS "/%s/size", region));
	snprintf(size, sizeof(size), "%llu", window - self->hmem.size);
	EXPECT_EQ(0, write_str(size, CXL_DEVS "/%s/size", region));
	EXPECT_EQ(free_start, read_u64(CXL_DEVS "/%s/resource", region));
	EXPECT_EQ(0, write_str(region, CXL_DEVS "/%s/delete_region", self->decoder));

	/* HMEM's dax device is exactly as it was. */
	expect_hmem_owns(_metadata, &self->hmem, true);
}

/*
 * A reload of dax_hmem, and an unbind/bind of the hmem_platform device, after
 * CXL's initial probe: the range CXL never claimed is HMEM's again, the same
 * range, not left without an owner (7.3 says "deferring range to CXL").
 */
TEST_F_TIMEOUT(hmem_owned, reload_and_rebind_keep_owner, 300)
{
	int round;

	for (round = 0; round < 2; round++) {
		if (round == 0) {
			ASSERT_EQ(0, sh("modprobe -r dax_cxl dax_hmem"));
			ASSERT_EQ(0, count_owned(OWNER_HMEM));
			ASSERT_EQ(0, sh("modprobe dax_hmem"));
		} else {
			ASSERT_EQ(0, write_str("hmem_platform.1",
					       "/sys/bus/platform/drivers/hmem_platform/unbind"));
			ASSERT_EQ(0, count_owned(OWNER_HMEM));
			ASSERT_EQ(0, write_str("hmem_platform.1",
					       "/sys/bus/platform/drivers/hmem_platform/bind"));
		}
		ASSERT_TRUE(wait_for(hmem_owns_one, DRIVER_BOUND_MS))
			TH_LOG("after %s: no HMEM dax device (the range has no owner)",
			       round ? "unbind/bind of hmem_platform.1" : "dax_hmem reload");
		expect_hmem_owns(_metadata, &self->hmem, false);
		EXPECT_EQ(0, count_owned(OWNER_CXL));
	}
}

/*
 * d, with the real cxl tool: the seed's command, against the window and a
 * memdev HMEM's range needs, fails the way the mail shows it: the tool's
 * "set_size failed: Numerical result out of range", the kernel's "HPA
 * allocation error (-ERANGE)" (a dev_dbg of alloc_hpa(), hence dynamic
 * debug; the mail's kernel printed -34).
 * The tool sizes the region by its own view of the window, which knows
 * only CXL regions; the kernel knows HMEM's claim. Nothing is left half
 * made, and HMEM's dax device is as it was.
 */
TEST_F_TIMEOUT(hmem_owned, create_region_cxl_tool, 300)
{
	unsigned long long window = read_u64(CXL_DEVS "/%s/size", self->decoder);
	char cmd[256], out[2048];
	int rc;

	ASSERT_EQ(0, sh("command -v cxl >/dev/null")) TH_LOG("no cxl tool (ndctl) in this system");
	ASSERT_EQ(0, write_str("module cxl_core file region.c +p", "/proc/dynamic_debug/control"))
		TH_LOG("alloc_hpa()'s message needs CONFIG_DYNAMIC_DEBUG");
	kmsg_mark();
	snprintf(cmd, sizeof(cmd), "cxl create-region -t ram -d %s -m %s -w 1 -g 256 -s %llu 2>&1",
		 self->decoder, self->memdev, window);
	rc = run_tool(out, sizeof(out), cmd);
	TH_LOG("%s: exit %d: %s", cmd, rc, out);
	EXPECT_NE(0, rc);
	EXPECT_NE(NULL, strstr(out, "set_size failed: Numerical result out of range"));
	EXPECT_NE(NULL, strstr(out, "created 0 regions"));
	/* %pe: "-ERANGE" with CONFIG_SYMBOLIC_ERRNAME, "-34" (the mail's) without. */
	EXPECT_TRUE(kmsg_has("HPA allocation error (-ERANGE)") ||
		    kmsg_has("HPA allocation error (-34)"))
		TH_LOG("no \"HPA allocation error (-ERANGE)\" in the kernel log");
	write_str("module cxl_core file region.c -p", "/proc/dynamic_debug/control");

	/* Nothing half made: the tool lists no region, sysfs has none. */
	EXPECT_EQ(0, run_tool(out, sizeof(out), "cxl list -R 2>&1"));
	EXPECT_EQ(NULL, strstr(out, "region")) TH_LOG("cxl list -R: %s", out);
	EXPECT_EQ(0, count_glob(CXL_DEVS "/region*"));

	/* HMEM's dax device is exactly as it was. */
	expect_hmem_owns(_metadata, &self->hmem, true);
}

/*
 * e. An innocent device: firmware described only region0 as Soft Reserved.
 * A region the user builds on another memdev, in the same window, is none
 * of HMEM's business, before and after dax_hmem goes away and comes back.
 */
FIXTURE(innocent) {
	char root[32];
	char region[32];
	unsigned long long start, size;
};

FIXTURE_SETUP(innocent)
{
	if (!cxl_test_available())
		SKIP(return, "cxl_test is not installed for this kernel");
	unload_stack();
	ASSERT_EQ(0, sh("modprobe cxl_test hmem_test=1"));
	coldplug();
	ASSERT_TRUE(wait_for(cxl_owns_one, SETTLE_MS));
	ASSERT_TRUE(region_root_decoder("region0", self->root, sizeof(self->root)));
	ASSERT_EQ(0, make_ram_region(self->root, 256ULL << 20, self->region,
				     sizeof(self->region)))
		TH_LOG("%s", region_err);
	self->start = read_u64(CXL_DEVS "/%s/resource", self->region);
	self->size = read_u64(CXL_DEVS "/%s/size", self->region);
	ASSERT_TRUE(wait_for(cxl_owns_two, SETTLE_MS))
		TH_LOG("%s has no dax device", self->region);
}

FIXTURE_TEARDOWN(innocent)
{
	unload_stack();
	EXPECT_FALSE(module_loaded("cxl_test"));
}

/*
 * The innocent region's own dax device: CXL's, bound (kmem or device_dax
 * claims its range), inside the region's HPA and below it in /proc/iomem.
 * Counting CXL dax devices is not enough: region0's would be counted too.
 */
static void expect_own_dax(struct __test_metadata *_metadata, const char *region,
			   unsigned long long start, unsigned long long size)
{
	struct dax_dev devs[MAX_DAX];
	int i, n = list_dax(devs), own = 0;

	for (i = 0; i < n; i++) {
		if (devs[i].owner != OWNER_CXL || !devs[i].size ||
		    devs[i].start < start || devs[i].start + devs[i].size > start + size)
			continue;
		own++;
		EXPECT_TRUE(devs[i].bound) TH_LOG("%s has no driver", devs[i].name);
		EXPECT_TRUE(iomem_nested(region, devs[i].name))
			TH_LOG("%s not nested under %s in /proc/iomem", devs[i].name, region);
	}
	EXPECT_EQ(1, own) TH_LOG("%s: %d dax devices of its own", region, own);
}

TEST_F_TIMEOUT(innocent, survives_dax_hmem_reload, 300)
{
	unsigned long long sr = read_u64(CXL_DEVS "/%s/resource", "region0");
	unsigned long long sr_size = read_u64(CXL_DEVS "/%s/size", "region0");

	/* What makes it innocent: not a byte of it is Soft Reserved. */
	EXPECT_TRUE(self->start >= sr + sr_size || self->start + self->size <= sr);
	EXPECT_TRUE(dax_ranges_disjoint());
	expect_own_dax(_metadata, self->region, self->start, self->size);

	/* dax_cxl imports from dax_hmem: it has to go first. */
	ASSERT_EQ(0, sh("modprobe -r dax_cxl dax_hmem"));
	ASSERT_FALSE(module_loaded("dax_hmem"));
	EXPECT_TRUE(region_committed(self->region));
	EXPECT_EQ(self->start, read_u64(CXL_DEVS "/%s/resource", self->region));
	EXPECT_TRUE(region0_committed());

	/* dax_cxl registers its driver only after HMEM's decisions are made. */
	ASSERT_EQ(0, sh("modprobe dax_hmem"));
	ASSERT_EQ(0, sh("modprobe dax_cxl"));
	ASSERT_TRUE(wait_for(cxl_owns_two, SETTLE_MS))
		TH_LOG("after reload: %d CXL dax devices, %s commit %d",
		       count_owned(OWNER_CXL), self->region, region_committed(self->region));
	EXPECT_TRUE(region_committed(self->region));
	EXPECT_EQ(self->start, read_u64(CXL_DEVS "/%s/resource", self->region));
	EXPECT_EQ(self->size, read_u64(CXL_DEVS "/%s/size", self->region));
	EXPECT_EQ(0, count_owned(OWNER_HMEM));
	EXPECT_TRUE(dax_ranges_disjoint());
	expect_own_dax(_metadata, self->region, self->start, self->size);
}

/*
 * HMEM owns the Soft Reserved range with dax_hmem.region_idle=1: it holds
 * the range in the "DAX Regions" arbiter but its dax device claims nothing
 * in iomem. What stops a CXL region over that range then is HMEM's "Soft
 * Reserved" entry, in iomem exactly where HMEM owns: the HPA allocation
 * fails with -ERANGE (in 7.3 nothing stops it: the region commits over
 * HMEM's range and only its dax_region loses in the arbiter). Then the
 * seed's order: disable the HMEM device, its entry goes, the region is
 * created over the same HPA and CXL owns it.
 */
FIXTURE(hmem_idle) {
	char root[32];
	unsigned long long sr, sr_size;
};

FIXTURE_SETUP(hmem_idle)
{
	if (!cxl_test_available())
		SKIP(return, "cxl_test is not installed for this kernel");
	unload_stack();
	ASSERT_EQ(0, sh("modprobe dax_hmem region_idle=1"));
	ASSERT_EQ(0, sh("modprobe cxl_test hmem_test=1 fail_autoassemble=1"));
	coldplug();
	ASSERT_TRUE(wait_for(hmem_region_present, SETTLE_MS));
	self->sr = read_u64(CXL_DEVS "/%s/resource", "region0");
	self->sr_size = read_u64(CXL_DEVS "/%s/size", "region0");
	ASSERT_TRUE(region_root_decoder("region0", self->root, sizeof(self->root)));
	ASSERT_EQ(0, write_str("region0", CXL_DEVS "/%s/delete_region", self->root));
}

FIXTURE_TEARDOWN(hmem_idle)
{
	unload_stack();
	EXPECT_FALSE(module_loaded("cxl_test"));
}

struct sr_window {
	const char *root;
	unsigned long long sr, sr_size;
};

static void hmem_range_published(struct __test_metadata *_metadata,
				 const struct sr_window *self)
{
	unsigned long long window = read_u64(CXL_DEVS "/%s/size", self->root);
	unsigned long long start = 0, end = 0;
	char region[32];

	/* Published exactly where HMEM owns, inside the CXL window. */
	ASSERT_TRUE(iomem_find("Soft Reserved", &start, &end));
	EXPECT_EQ(self->sr, start);
	EXPECT_EQ(self->sr + self->sr_size - 1, end);
	EXPECT_TRUE(iomem_nested("CXL Window 0", "Soft Reserved"));

	/* So a region that needs it cannot get its HPA, and leaves nothing half made. */
	EXPECT_EQ(-ERANGE, make_ram_region(self->root, window, region, sizeof(region)))
		TH_LOG("%s", region_err);
	EXPECT_EQ(0, write_str(region, CXL_DEVS "/%s/delete_region", self->root));
	EXPECT_TRUE(hmem_region_present());

	/* The seed's order: disable the HMEM device, and its entry goes... */
	ASSERT_EQ(0, hmem_let_go());
	EXPECT_FALSE(soft_reserved_published());
	EXPECT_FALSE(hmem_region_present());

	/* ...then a region over the same HPA commits, and CXL owns it. */
	ASSERT_EQ(0, make_ram_region(self->root, self->sr_size, region, sizeof(region)))
		TH_LOG("%s", region_err);
	EXPECT_EQ(self->sr, read_u64(CXL_DEVS "/%s/resource", region));
	ASSERT_TRUE(wait_for(cxl_owns_sr, SETTLE_MS))
		TH_LOG("%s got no dax device after HMEM let go", region);
	EXPECT_TRUE(dax_ranges_disjoint());
	EXPECT_EQ(0, count_owned(OWNER_HMEM));
}

TEST_F_TIMEOUT(hmem_idle, cxl_region_over_hmem_range, 300)
{
	struct sr_window w = { self->root, self->sr, self->sr_size };

	hmem_range_published(_metadata, &w);
}

/*
 * `cxl create-region -t ram` of `size` bytes, one way, in root decoder
 * `root`, with the first memdev it takes among those whose DPA firmware
 * left alone (region0's decoders keep theirs), or the first that fails
 * with `want`. The memdev tried last goes to `memdev`, the tool's last
 * exit status is returned, its output left in `out`.
 */
static int cxl_tool_region(const char *root, unsigned long long size, const char *want,
			   char *memdev, size_t mlen, char *out, size_t len)
{
	char cand[32][32], cmd[256];
	int i, n = free_endpoint_decoders(cand, 32), rc = -ENODEV;

	for (i = 0; i < n; i++) {
		if (!decoder_memdev(cand[i], memdev, mlen))
			continue;
		snprintf(cmd, sizeof(cmd),
			 "cxl create-region -t ram -d %s -m %s -w 1 -g 256 -s %llu 2>&1",
			 root, memdev, size);
		rc = run_tool(out, len, cmd);
		if (!rc || (want && strstr(out, want)))
			break;
	}
	return rc;
}

/*
 * The seed's teardown, end to end, with the cxl tool as its mail ran it:
 * `cxl create-region` over HMEM's range (a free memdev, one way), then
 * disable the HMEM device, `cxl disable-region` and `cxl destroy-region`
 * what the first attempt left, and `cxl create-region` again: the region
 * gets the same HPA and CXL owns it. The first attempt, a region the size
 * of the window (empty but for HMEM's range), fails as the mail shows and
 * leaves nothing behind (in 7.3 it commits and its dax region loses to
 * HMEM's: the mail's stuck state), and HMEM's entry goes with its device.
 */
TEST_F_TIMEOUT(hmem_idle, teardown_with_cxl_tool, 300)
{
	const char *erange = "set_size failed: Numerical result out of range";
	unsigned long long window = read_u64(CXL_DEVS "/%s/size", self->root);
	char cmd[256], out[4096], region[32], memdev[32];
	int rc;

	ASSERT_EQ(0, sh("command -v cxl >/dev/null")) TH_LOG("no cxl tool (ndctl) in this system");
	kmsg_mark();
	rc = cxl_tool_region(self->root, window, erange, memdev, sizeof(memdev), out,
			     sizeof(out));
	TH_LOG("cxl create-region over HMEM's range with %s: exit %d: %s", memdev, rc, out);
	EXPECT_NE(0, rc);
	EXPECT_NE(NULL, strstr(out, erange));
	EXPECT_EQ(0, run_tool(out, sizeof(out), "cxl list -R 2>&1"));
	EXPECT_EQ(NULL, strstr(out, "region")) TH_LOG("cxl list -R: %s", out);
	EXPECT_TRUE(hmem_region_present());

	ASSERT_EQ(0, hmem_let_go());
	EXPECT_FALSE(soft_reserved_published());
	EXPECT_FALSE(hmem_region_present());

	/* The same HPA, through the tool: CXL owns it. */
	rc = cxl_tool_region(self->root, self->sr_size, NULL, memdev, sizeof(memdev), out,
			     sizeof(out));
	ASSERT_EQ(0, rc) TH_LOG("cxl create-region with %s: exit %d: %s", memdev, rc, out);
	ASSERT_TRUE(cxl_dev_holding("region*", "resource", self->sr, region, sizeof(region)));
	EXPECT_EQ(self->sr, read_u64(CXL_DEVS "/%s/resource", region));
	EXPECT_EQ(self->sr_size, read_u64(CXL_DEVS "/%s/size", region));
	ASSERT_TRUE(wait_for(cxl_owns_sr, SETTLE_MS))
		TH_LOG("%s got no dax device after HMEM let go", region);
	EXPECT_EQ(0, count_owned(OWNER_HMEM));
	EXPECT_TRUE(dax_ranges_disjoint());
	snprintf(cmd, sizeof(cmd), "cxl list -r %s 2>&1", region);
	EXPECT_EQ(0, run_tool(out, sizeof(out), cmd));
	EXPECT_NE(NULL, strstr(out, region)) TH_LOG("%s: %s", cmd, out);
}

/*
 * HMEM decided before the auto-region assembled (no memdev had a driver
 * yet), and with region_idle=1 its range stays out of System RAM: region0
 * then commits over it and its DAX region loses in the arbiter. When HMEM
 * decides again, on an hmem_platform rebind with dax_cxl loaded, the range
 * must stay HMEM's: region0, whose DAX region lost, uses none of it. Were
 * region0 still counted as a claim, HMEM would leave the range to a DAX
 * region that is gone, and nobody would own it.
 */
FIXTURE(dax_cxl_lost) {
	unsigned long long sr_size;
};

FIXTURE_SETUP(dax_cxl_lost)
{
	int i;

	if (!cxl_test_available())
		SKIP(return, "cxl_test is not installed for this kernel");
	unload_stack();
	ASSERT_TRUE(stack_unloaded()) TH_LOG("%s still loaded from before", stack_left());
	ASSERT_EQ(0, sh("modprobe cxl_test hmem_test=1"));
	ASSERT_EQ(0, sh("modprobe dax_hmem region_idle=1"));
	ASSERT_EQ(0, sh("modprobe dax_cxl"));
	/*
	 * dax_cxl registers once HMEM has decided: on no region at all. A plain
	 * poll: wait_for() would load the memdevs' drivers meanwhile.
	 */
	for (i = 0; i < SETTLE_MS / 100 && !dax_cxl_driver_registered(); i++)
		usleep(100 * 1000);
	ASSERT_TRUE(dax_cxl_driver_registered());
	ASSERT_EQ(0, count_glob(CXL_DEVS "/region*")) TH_LOG("a region before coldplug");
	ASSERT_TRUE(hmem_region_present());
	self->sr_size = hmem_region_size();

	kmsg_mark();
	coldplug();
	ASSERT_TRUE(wait_for(region0_committed, SETTLE_MS));
	ASSERT_TRUE(wait_for(dax_region_conflict_logged, SETTLE_MS))
		TH_LOG("region0's DAX region did not lose to HMEM's");
	EXPECT_EQ(0, count_owned(OWNER_CXL));
}

FIXTURE_TEARDOWN(dax_cxl_lost)
{
	unload_stack();
	EXPECT_FALSE(module_loaded("cxl_test"));
}

TEST_F_TIMEOUT(dax_cxl_lost, rebind_keeps_owner, 300)
{
	const char *drv = "/sys/bus/platform/drivers/hmem_platform";

	ASSERT_EQ(0, write_str("hmem_platform.1", "%s/unbind", drv));
	ASSERT_FALSE(hmem_region_present());
	ASSERT_EQ(0, write_str("hmem_platform.1", "%s/bind", drv));
	EXPECT_TRUE(wait_for(hmem_region_present, SETTLE_MS))
		TH_LOG("after the rebind nobody owns the Soft Reserved range (region0 lost it)");
	EXPECT_EQ(self->sr_size, hmem_region_size());
	EXPECT_EQ(0, count_owned(OWNER_CXL));
	EXPECT_TRUE(region0_committed());
}

/*
 * dax_cxl registers its driver from a work item, after its init returned.
 * When that registration fails (cxl_test takes the driver's name first),
 * the module stays loaded without its driver, and must then unload
 * without unregistering a driver it never registered.
 */
FIXTURE(dax_cxl_refused) {
};

FIXTURE_SETUP(dax_cxl_refused)
{
	if (!cxl_test_available())
		SKIP(return, "cxl_test is not installed for this kernel");
	unload_stack();
	ASSERT_TRUE(stack_unloaded()) TH_LOG("%s still loaded from before", stack_left());
	if (dax_cxl_driver_registered())
		SKIP(return, "a cxl_dax_region driver is built in: the name cannot be taken");
	kmsg_mark();
	ASSERT_EQ(0, sh("modprobe cxl_test dax_region_name_taken=1"));
	coldplug();
}

FIXTURE_TEARDOWN(dax_cxl_refused)
{
	unload_stack();
	EXPECT_FALSE(module_loaded("cxl_test"));
	EXPECT_FALSE(module_loaded("dax_cxl"));
}

static bool dax_cxl_registration_refused(void)
{
	return kmsg_has("Driver 'cxl_dax_region' is already registered");
}

TEST_F_TIMEOUT(dax_cxl_refused, unload, 300)
{
	ASSERT_EQ(0, sh("modprobe dax_cxl"));
	ASSERT_TRUE(wait_for(dax_cxl_registration_refused, DRIVER_BOUND_MS))
		TH_LOG("dax_cxl's driver registration was not refused within %d ms",
		       DRIVER_BOUND_MS);
	kmsg_mark();
	ASSERT_EQ(0, sh("modprobe -r dax_cxl"));
	EXPECT_FALSE(module_loaded("dax_cxl"));
	EXPECT_FALSE(kmsg_has("Unexpected driver unregister"))
		TH_LOG("dax_cxl's exit unregistered a driver that never registered");
}

TEST_HARNESS_MAIN
