// SPDX-License-Identifier: GPL-2.0
/*
 * Soft Reserved ownership on emulated CXL hardware, with no mock: QEMU's
 * cxl-type3 memdevs behind pxb-cxl host bridges, CXL windows from its CEDT,
 * the tree's own CXL and DAX modules. Firmware's "Soft Reserved" comes the
 * way firmware's does, as an e820 entry: memmap=SIZE%START+0xefffffff on the
 * kernel command line, over all of the first CXL window. Nothing is
 * committed at boot, so dax_hmem defers the range to CXL, then takes it.
 *
 * The cases follow a report on linux-cxl: `cxl create-region` over HMEM's
 * range fails; once HMEM lets go, the region is created, CXL owns it, and
 * its memory is onlined and used; HMEM coming back then loses the DAX
 * Regions arbitration.
 *
 * Skips where the command line carries no Soft Reserved range or there is
 * no CXL memdev; fails if cxl_test is loaded (this is the mock-free run).
 * The cases share one boot: handoff must run last.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/mempolicy.h>

#include "../kselftest_harness.h"
#include "cxl_sr_lib.h"

#define HMEM_DRIVER	"/sys/bus/platform/drivers/hmem"
#define USE_BYTES	(32ULL << 20)

/* The Soft Reserved range memmap=SIZE%START+0xefffffff asked e820 for. */
static bool cmdline_soft_reserved(unsigned long long *start, unsigned long long *size)
{
	char buf[4096], *at, *end, *unit;

	if (!read_line(buf, sizeof(buf), "/proc/cmdline")[0])
		return false;
	for (at = buf; (at = strstr(at, "memmap=")); at++) {
		*size = strtoull(at + strlen("memmap="), &end, 0);
		unit = *end ? strchr("KMG", *end) : NULL;
		if (unit) {
			*size <<= 10 * (unit - "KMG" + 1);
			end++;
		}
		if (*end != '%')
			continue;
		*start = strtoull(end + 1, &end, 0);
		if (!strncmp(end, "+0xefffffff", strlen("+0xefffffff")))
			return true;
	}
	return false;
}

FIXTURE(hw) {
	unsigned long long sr_start, sr_size;
	char decoder[32];	/* the root decoder of the Soft Reserved window */
	char memdev[32];	/* the memdev behind that window's host bridge */
	char hmem[32];		/* hmem.N, HMEM's device for the range */
	struct dax_dev dax;	/* HMEM's dax device */
};

/* The root decoder whose window holds `start`, and a memdev below its host bridge. */
static bool window_decoder(unsigned long long start, char *decoder, size_t dlen,
			   char *memdev, size_t mlen)
{
	char path[PATH_MAX], real[PATH_MAX], bridge[PATH_MAX], targets[64];
	glob_t g;
	size_t i, blen;
	bool found = false;

	if (!cxl_dev_holding("decoder0.*", "start", start, decoder, dlen))
		return false;
	/* root0's dport<id> links to the host bridge the window's first target names. */
	read_line(targets, sizeof(targets), CXL_DEVS "/%s/target_list", decoder);
	snprintf(path, sizeof(path), CXL_DEVS "/root0/dport%lu", strtoul(targets, NULL, 0));
	if (!realpath(path, bridge))
		return false;
	blen = strlen(bridge);
	if (glob(CXL_DEVS "/mem*", 0, NULL, &g))
		return false;
	for (i = 0; i < g.gl_pathc && !found; i++) {
		snprintf(path, sizeof(path), "%s", g.gl_pathv[i]);
		if (realpath(path, real) && !strncmp(real, bridge, blen) && real[blen] == '/') {
			snprintf(memdev, mlen, "%s", strrchr(path, '/') + 1);
			found = true;
		}
	}
	globfree(&g);
	return found;
}

FIXTURE_SETUP(hw)
{
	unsigned long long wstart, wend;
	struct dax_dev devs[MAX_DAX];
	char real[PATH_MAX], path[PATH_MAX];
	int i, n;

	if (!cmdline_soft_reserved(&self->sr_start, &self->sr_size))
		SKIP(return, "no memmap=SIZE%%START+0xefffffff: not the emulated CXL machine");
	ASSERT_FALSE(module_loaded("cxl_test") || module_loaded("cxl_mock"))
		TH_LOG("cxl_test is loaded: this run must use the tree's own modules");
	coldplug();
	if (!count_glob(CXL_DEVS "/mem*"))
		SKIP(return, "no CXL memdev: no emulated CXL hardware here");
	ASSERT_FALSE(module_loaded("cxl_test") || module_loaded("cxl_mock"));

	/* The machine's first window is where the command line put Soft Reserved. */
	ASSERT_TRUE(iomem_find("CXL Window 0", &wstart, &wend));
	ASSERT_TRUE(wstart == self->sr_start && wend - wstart + 1 == self->sr_size)
		TH_LOG("CXL Window 0 is %#llx-%#llx, Soft Reserved %#llx+%#llx: the window moved",
		       wstart, wend, self->sr_start, self->sr_size);
	ASSERT_TRUE(window_decoder(self->sr_start, self->decoder, sizeof(self->decoder),
				   self->memdev, sizeof(self->memdev)))
		TH_LOG("no root decoder at %#llx with a memdev below it", self->sr_start);

	/* Registered the firmware way: hmem_platform.0, from hmem_register_resource(). */
	ASSERT_TRUE(exists("/sys/bus/platform/devices/hmem_platform.0"));
	ASSERT_TRUE(wait_for(hmem_owns_one, SETTLE_MS))
		TH_LOG("HMEM dax devices: %d", count_owned(OWNER_HMEM));
	n = list_dax(devs);
	for (i = 0; i < n; i++)
		if (devs[i].owner == OWNER_HMEM)
			self->dax = devs[i];
	snprintf(path, sizeof(path), DAX_DEVS "/%s/..", self->dax.name);
	ASSERT_NE(NULL, realpath(path, real));
	snprintf(self->hmem, sizeof(self->hmem), "%.31s", strrchr(real, '/') + 1);
	ASSERT_EQ(0, strncmp(self->hmem, "hmem.", 5))
		TH_LOG("%s's parent: %s", self->dax.name, real);
}

FIXTURE_TEARDOWN(hw)
{
	/* A case stopped between unloading and reloading leaves them loaded. */
	if (!module_loaded("dax_hmem"))
		sh("modprobe dax_hmem");
	if (!module_loaded("dax_cxl"))
		sh("modprobe dax_cxl");
}

/*
 * The seed's starting point: no region committed, so HMEM deferred the range
 * to CXL until CXL had probed, then took all of it (dax_hmem's debug
 * messages are on: dax_hmem.dyndbg=+p).
 */
TEST_F_TIMEOUT(hw, hmem_owns_the_range, 300)
{
	char msg[128];

	EXPECT_EQ(self->sr_start, self->dax.start);
	EXPECT_EQ(self->sr_size, self->dax.size);
	EXPECT_EQ(0, count_owned(OWNER_CXL));
	EXPECT_EQ(0, count_glob(CXL_DEVS "/region*"));
	kmsg_rewind();
	snprintf(msg, sizeof(msg), "await CXL initial probe: [mem %#010llx-%#010llx",
		 self->sr_start, self->sr_start + self->sr_size - 1);
	EXPECT_TRUE(kmsg_has(msg)) TH_LOG("HMEM did not defer: no \"%s\"", msg);
	snprintf(msg, sizeof(msg),
		 "CXL did not claim resource, registering: [mem %#010llx-%#010llx",
		 self->sr_start, self->sr_start + self->sr_size - 1);
	EXPECT_TRUE(kmsg_has(msg)) TH_LOG("no \"%s\"", msg);
}

/*
 * The seed's command over HMEM's range fails as the mail shows it, leaves
 * nothing half made, and HMEM's dax device as it was.
 */
TEST_F_TIMEOUT(hw, create_region_refused, 300)
{
	struct dax_dev devs[MAX_DAX];
	char cmd[256], out[2048];
	int i, n, rc;

	ASSERT_EQ(0, write_str("module cxl_core file region.c +p", "/proc/dynamic_debug/control"));
	kmsg_mark();
	snprintf(cmd, sizeof(cmd), "cxl create-region -t ram -d %s -m %s -w 1 -g 256 2>&1",
		 self->decoder, self->memdev);
	rc = run_tool(out, sizeof(out), cmd);
	TH_LOG("%s: exit %d: %s", cmd, rc, out);
	EXPECT_NE(0, rc);
	EXPECT_NE(NULL, strstr(out, "set_size failed: Numerical result out of range"));
	EXPECT_TRUE(kmsg_has("HPA allocation error (-ERANGE)") ||
		    kmsg_has("HPA allocation error (-34)"));
	write_str("module cxl_core file region.c -p", "/proc/dynamic_debug/control");

	EXPECT_EQ(0, run_tool(out, sizeof(out), "cxl list -R 2>&1"));
	EXPECT_EQ(NULL, strstr(out, "region")) TH_LOG("cxl list -R: %s", out);
	EXPECT_EQ(0, count_glob(CXL_DEVS "/region*"));
	n = list_dax(devs);
	EXPECT_EQ(1, n);
	for (i = 0; i < n; i++) {
		EXPECT_STREQ(self->dax.name, devs[i].name);
		EXPECT_EQ(OWNER_HMEM, devs[i].owner);
		EXPECT_TRUE(devs[i].bound);
	}
}

/* The driver `dev` is bound to is `driver`. */
static bool driver_is(const char *dev, const char *driver)
{
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), DAX_DEVS "/%s/driver", dev);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return false;
	link[n] = '\0';
	return !strcmp(strrchr(link, '/') + 1, driver);
}

/* The CXL dax device bound inside `region`, in out. */
static bool cxl_dax_in(const char *region, struct dax_dev *out)
{
	struct dax_dev devs[MAX_DAX];
	int i, n = list_dax(devs);

	for (i = 0; i < n; i++) {
		if (devs[i].owner == OWNER_CXL && devs[i].bound &&
		    iomem_nested(region, devs[i].name)) {
			*out = devs[i];
			return true;
		}
	}
	return false;
}

/* The region watched: committed, with its CXL dax device bound. */
static char watched[32];

static bool watched_owned(void)
{
	struct dax_dev dax;

	return region_committed(watched) && cxl_dax_in(watched, &dax);
}

/*
 * An innocent device: the second window has no Soft Reserved. A region the
 * user creates there is CXL's, and stays so across a dax_hmem and dax_cxl
 * reload, after which HMEM owns its range in the first window again.
 */
TEST_F_TIMEOUT(hw, innocent_region, 600)
{
	unsigned long long wstart, wend;
	char decoder[32], memdev[32], cmd[256], out[4096];
	struct dax_dev before, after;
	int rc;

	ASSERT_TRUE(iomem_find("CXL Window 1", &wstart, &wend));
	ASSERT_TRUE(window_decoder(wstart, decoder, sizeof(decoder), memdev, sizeof(memdev)));
	snprintf(cmd, sizeof(cmd), "cxl create-region -t ram -d %s -m %s -w 1 -g 256 2>&1",
		 decoder, memdev);
	rc = run_tool(out, sizeof(out), cmd);
	TH_LOG("%s: exit %d", cmd, rc);
	ASSERT_EQ(0, rc) TH_LOG("%s", out);
	ASSERT_TRUE(cxl_dev_holding("region*", "resource", wstart, watched, sizeof(watched)));
	ASSERT_TRUE(wait_for(watched_owned, SETTLE_MS))
		TH_LOG("%s commit=%s, no CXL dax device bound in it", watched,
		       read_line(out, sizeof(out), CXL_DEVS "/%s/commit", watched));
	ASSERT_TRUE(cxl_dax_in(watched, &before));
	EXPECT_EQ(wend - wstart + 1, before.size);
	EXPECT_EQ(1, count_owned(OWNER_HMEM));

	ASSERT_EQ(0, sh("modprobe -r dax_cxl dax_hmem"));
	EXPECT_EQ(0, count_owned(OWNER_HMEM));
	EXPECT_EQ(0, count_owned(OWNER_CXL));
	ASSERT_EQ(0, sh("modprobe dax_hmem"));
	ASSERT_EQ(0, sh("modprobe dax_cxl"));

	EXPECT_TRUE(wait_for(watched_owned, SETTLE_MS))
		TH_LOG("%s has no CXL dax device after the reload", watched);
	ASSERT_TRUE(cxl_dax_in(watched, &after));
	EXPECT_EQ(before.start, after.start);
	EXPECT_EQ(before.size, after.size);
	EXPECT_TRUE(wait_for(hmem_owns_one, SETTLE_MS))
		TH_LOG("after the reload nobody owns the Soft Reserved range");
	EXPECT_EQ(1, count_owned(OWNER_CXL));
}

/*
 * Write a pattern through `bytes` of memory allocated on `node` only, read
 * it back, and check from /proc/self/pagemap that every page's physical
 * address lies in [start, start + size): the memory is the device's.
 */
static int use_node_memory(int node, unsigned long long start, unsigned long long size,
			   size_t bytes, char *why, size_t len)
{
	unsigned long mask[2] = { 0 };
	size_t page = getpagesize(), i;
	unsigned long long *p, *w, entry, pa;
	int fd = -1, rc = -1;

	if (node < 0 || node >= (int)(8 * sizeof(mask))) {
		snprintf(why, len, "node %d out of range", node);
		return -1;
	}
	mask[node / (8 * sizeof(mask[0]))] = 1UL << (node % (8 * sizeof(mask[0])));
	/* maxnode counts one more than the bits the kernel reads. */
	if (syscall(SYS_set_mempolicy, MPOL_BIND, mask, 8 * sizeof(mask) + 1)) {
		snprintf(why, len, "set_mempolicy(MPOL_BIND, node %d): %s", node, strerror(errno));
		return -1;
	}
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		snprintf(why, len, "mmap: %s", strerror(errno));
		goto out;
	}
	for (w = p; (char *)w < (char *)p + bytes; w++)
		*w = (unsigned long)w * 0x9e3779b97f4a7c15ULL;
	for (w = p; (char *)w < (char *)p + bytes; w++) {
		if (*w != (unsigned long)w * 0x9e3779b97f4a7c15ULL) {
			snprintf(why, len, "read back %#llx at offset %#zx",
				 *w, (size_t)((char *)w - (char *)p));
			goto out;
		}
	}
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0) {
		snprintf(why, len, "/proc/self/pagemap: %s", strerror(errno));
		goto out;
	}
	for (i = 0; i < bytes / page; i++) {
		off_t at = ((unsigned long)p / page + i) * sizeof(entry);

		if (pread(fd, &entry, sizeof(entry), at) != sizeof(entry) || !(entry >> 63)) {
			snprintf(why, len, "page %zu: not present in pagemap", i);
			goto out;
		}
		pa = (entry & ((1ULL << 55) - 1)) * page;
		if (pa < start || pa >= start + size) {
			snprintf(why, len, "page %zu is at %#llx, outside %#llx+%#llx",
				 i, pa, start, size);
			goto out;
		}
	}
	rc = 0;
out:
	syscall(SYS_set_mempolicy, MPOL_DEFAULT, NULL, 0);
	if (fd >= 0)
		close(fd);
	if (p != MAP_FAILED)
		munmap(p, bytes);
	return rc;
}

/*
 * The seed's handoff: HMEM lets go (its device unbound), the same command
 * then creates the region, CXL owns the range, daxctl onlines it as System
 * RAM and a process uses it. HMEM coming back then loses: the range is CXL's
 * in the DAX Regions arbiter.
 */
TEST_F_TIMEOUT(hw, handoff, 600)
{
	struct dax_dev cxl = { 0 };
	char cmd[256], out[4096], why[256], node[16], region[32];
	int rc;

	ASSERT_EQ(0, write_str(self->hmem, HMEM_DRIVER "/unbind"));
	ASSERT_EQ(0, count_owned(OWNER_HMEM));

	snprintf(cmd, sizeof(cmd), "cxl create-region -t ram -d %s -m %s -w 1 -g 256 2>&1",
		 self->decoder, self->memdev);
	rc = run_tool(out, sizeof(out), cmd);
	TH_LOG("%s: exit %d: %s", cmd, rc, out);
	ASSERT_EQ(0, rc);
	ASSERT_TRUE(cxl_dev_holding("region*", "resource", self->sr_start, watched,
				    sizeof(watched)))
		TH_LOG("no region at %#llx", self->sr_start);
	snprintf(region, sizeof(region), "%s", watched);
	ASSERT_TRUE(wait_for(watched_owned, SETTLE_MS))
		TH_LOG("%s commit=%s, CXL dax devices bound: %d", region,
		       read_line(out, sizeof(out), CXL_DEVS "/%s/commit", region),
		       count_owned(OWNER_CXL));
	ASSERT_TRUE(cxl_dax_in(region, &cxl));
	EXPECT_EQ(self->sr_start, cxl.start);
	EXPECT_EQ(self->sr_size, cxl.size);

	/*
	 * System RAM, onlined by daxctl: kmem may have it already (CXL dax
	 * regions ask for kmem), offline (memhp_default_state=offline).
	 */
	if (driver_is(cxl.name, "kmem"))
		snprintf(cmd, sizeof(cmd), "daxctl online-memory %s 2>&1", cxl.name);
	else
		snprintf(cmd, sizeof(cmd), "daxctl reconfigure-device --mode=system-ram %s 2>&1",
			 cxl.name);
	rc = run_tool(out, sizeof(out), cmd);
	TH_LOG("%s: exit %d: %s", cmd, rc, out);
	ASSERT_EQ(0, rc);
	ASSERT_TRUE(read_line(node, sizeof(node), DAX_DEVS "/%s/target_node", cxl.name)[0]);
	rc = use_node_memory(atoi(node), cxl.start, cxl.size, USE_BYTES, why, sizeof(why));
	EXPECT_EQ(0, rc) TH_LOG("%llu MiB on node %s: %s", USE_BYTES >> 20, node, why);

	/* HMEM comes back: its dax region loses to CXL's. */
	kmsg_mark();
	EXPECT_NE(0, write_str(self->hmem, HMEM_DRIVER "/bind"));
	EXPECT_EQ(0, count_owned(OWNER_HMEM)) TH_LOG("HMEM made a dax device over CXL's range");
	EXPECT_TRUE(kmsg_has("dax_region resource conflict"));
	EXPECT_TRUE(cxl_dax_in(region, &cxl)) TH_LOG("CXL's dax device lost its driver");
}

TEST_HARNESS_MAIN
