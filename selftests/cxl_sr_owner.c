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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "../kselftest_harness.h"

#define SETTLE_MS	90000
#define DRIVER_BOUND_MS	10000

#define CXL_DEVS	"/sys/bus/cxl/devices"
#define DAX_DEVS	"/sys/bus/dax/devices"
#define HMEM_TEST_DEV	"/sys/bus/platform/devices/hmem_platform.1"

/* Every module cxl_test and the coldplug can bring in, in unload order. */
static const char *const stack_modules[] = {
	"dax_cxl", "kmem", "device_dax", "dax_hmem", "cxl_test", "cxl_mock_mem",
	"cxl_pmem", "cxl_mem", "cxl_port", "cxl_acpi", "cxl_pci", "cxl_mock", "cxl_core",
};

static int sh(const char *fmt, ...)
{
	char *cmd;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return -1;
	rc = system(cmd);
	free(cmd);
	if (rc == -1 || !WIFEXITED(rc))
		return -1;
	return WEXITSTATUS(rc);
}

static bool exists(const char *fmt, ...)
{
	char path[PATH_MAX];
	struct stat st;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return stat(path, &st) == 0;
}

/* The first line of a sysfs file, without the newline; "" if unreadable. */
static const char *read_line(char *buf, size_t len, const char *fmt, ...)
{
	char path[PATH_MAX];
	va_list ap;
	FILE *f;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	buf[0] = '\0';
	f = fopen(path, "r");
	if (!f)
		return buf;
	if (!fgets(buf, len, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static unsigned long long read_u64(const char *fmt, const char *dev)
{
	char buf[64];

	read_line(buf, sizeof(buf), fmt, dev);
	return strtoull(buf, NULL, 0);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/*
 * No udev here: load the driver of every device that has a modalias.
 * Aliases are resolved against modules.alias here, so that modprobe (slow
 * under emulation) runs only for a module that exists and is not loaded.
 */
struct alias_rule {
	char pattern[256];
	char module[64];
};

static struct alias_rule *rules;
static int nrules;

static void load_alias_rules(void)
{
	char path[PATH_MAX], line[512];
	struct utsname u;
	FILE *f;
	int cap = 0;

	if (rules || uname(&u))
		return;
	snprintf(path, sizeof(path), "/lib/modules/%s/modules.alias", u.release);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		struct alias_rule r;

		if (sscanf(line, "alias %255s %63s", r.pattern, r.module) != 2)
			continue;
		if (nrules == cap) {
			struct alias_rule *n = realloc(rules, (cap + 256) * sizeof(*rules));

			if (!n)
				break;
			rules = n;
			cap += 256;
		}
		rules[nrules++] = r;
	}
	fclose(f);
}

static bool module_loaded(const char *name);

static bool coldplug_round(void)
{
	char alias[256];
	bool loaded = false;
	size_t j;
	glob_t g;
	int k;

	load_alias_rules();
	if (glob("/sys/bus/*/devices/*/modalias", 0, NULL, &g))
		return false;
	for (j = 0; j < g.gl_pathc; j++) {
		if (!*read_line(alias, sizeof(alias), "%s", g.gl_pathv[j]))
			continue;
		for (k = 0; k < nrules; k++) {
			char name[64];
			size_t c;

			if (fnmatch(rules[k].pattern, alias, 0))
				continue;
			snprintf(name, sizeof(name), "%s", rules[k].module);
			for (c = 0; name[c]; c++)
				if (name[c] == '-')
					name[c] = '_';
			if (!module_loaded(name) && !sh("modprobe -q %s", name))
				loaded = true;
		}
	}
	globfree(&g);
	return loaded;
}

static void coldplug(void)
{
	int i;

	for (i = 0; i < 10 && coldplug_round(); i++)
		;
}

/*
 * Poll cond() until it holds or timeout_ms pass, loading drivers for devices
 * that appear meanwhile (dax_region0 only exists once region0 commits).
 */
static bool wait_for(bool (*cond)(void), int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	do {
		if (cond())
			return true;
		coldplug_round();
		usleep(100 * 1000);
	} while (now_ms() < end);
	return cond();
}

static bool module_loaded(const char *name)
{
	return exists("/sys/module/%s/initstate", name);
}

static bool stack_unloaded(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(stack_modules); i++)
		if (exists("/sys/module/%s/initstate", stack_modules[i]))
			return false;
	return true;
}

static void unload_stack(void)
{
	size_t i;
	int round;

	/* dax_cxl may still be registering its driver: let that finish. */
	for (round = 0; round < 3 && !stack_unloaded(); round++) {
		for (i = 0; i < ARRAY_SIZE(stack_modules); i++)
			sh("modprobe -r -q %s 2>/dev/null", stack_modules[i]);
		if (!stack_unloaded())
			usleep(200 * 1000);
	}
}

enum owner { OWNER_NONE, OWNER_CXL, OWNER_HMEM };

struct dax_dev {
	char name[32];
	enum owner owner;
	unsigned long long start, size;
	bool bound;	/* a driver (device_dax, kmem) holds it: its range is claimed */
};

#define MAX_DAX	16

/* Every dax device, with the driver stack it hangs under. */
static int list_dax(struct dax_dev *out)
{
	char path[PATH_MAX], real[PATH_MAX];
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(DAX_DEVS);

	if (!d)
		return 0;
	while ((de = readdir(d)) && n < MAX_DAX) {
		struct dax_dev *dd = &out[n];

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), DAX_DEVS "/%s", de->d_name);
		if (!realpath(path, real))
			continue;
		snprintf(dd->name, sizeof(dd->name), "%s", de->d_name);
		if (strstr(real, "/hmem_platform."))
			dd->owner = OWNER_HMEM;
		else if (strstr(real, "/region"))
			dd->owner = OWNER_CXL;
		else
			dd->owner = OWNER_NONE;
		dd->start = read_u64(DAX_DEVS "/%s/resource", dd->name);
		dd->size = read_u64(DAX_DEVS "/%s/size", dd->name);
		dd->bound = exists(DAX_DEVS "/%s/driver", dd->name);
		n++;
	}
	closedir(d);
	return n;
}

static int count_owned(enum owner owner)
{
	struct dax_dev devs[MAX_DAX];
	int i, n = list_dax(devs), c = 0;

	for (i = 0; i < n; i++)
		c += devs[i].owner == owner && devs[i].size;
	return c;
}

/*
 * Settled: `owner` has exactly `want` dax devices and a driver holds each
 * of them. A dax device nobody has bound yet owns its range in the DAX
 * Regions arbiter only: nothing is claimed in /proc/iomem, so a region could
 * still get that HPA. Fast kernels get here before kmem is loaded for it.
 */
static bool owns_bound(enum owner owner, int want)
{
	struct dax_dev devs[MAX_DAX];
	int i, n = list_dax(devs), c = 0;

	for (i = 0; i < n; i++) {
		if (devs[i].owner != owner || !devs[i].size)
			continue;
		if (!devs[i].bound)
			return false;
		c++;
	}
	return c == want;
}

/* f. No byte is covered by two dax devices, whoever owns them. */
static bool dax_ranges_disjoint(void)
{
	struct dax_dev devs[MAX_DAX];
	int i, j, n = list_dax(devs);

	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (devs[i].size && devs[j].size &&
			    devs[i].start < devs[j].start + devs[j].size &&
			    devs[j].start < devs[i].start + devs[i].size)
				return false;
	return true;
}

static int count_glob(const char *pattern)
{
	glob_t g;
	int n;

	if (glob(pattern, 0, NULL, &g))
		return 0;
	n = g.gl_pathc;
	globfree(&g);
	return n;
}

static bool region0_committed(void)
{
	char buf[16];

	return !strcmp(read_line(buf, sizeof(buf), CXL_DEVS "/region0/commit"), "1");
}

static bool cxl_owns_one(void)
{
	return region0_committed() && owns_bound(OWNER_CXL, 1);
}

static bool hmem_owns_one(void)
{
	return owns_bound(OWNER_HMEM, 1);
}

static bool dax_cxl_driver_registered(void)
{
	return exists("/sys/bus/cxl/drivers/cxl_dax_region");
}

/*
 * /proc/iomem as a maintainer reads it: whether `child` sits directly under
 * `parent` (one level of indentation deeper, within parent's block).
 */
static bool iomem_nested(const char *parent, const char *child)
{
	char line[512];
	int pdepth = -1;
	bool found = false;
	FILE *f = fopen("/proc/iomem", "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		int depth = strspn(line, " ") / 2;
		char *name = strstr(line, " : ");

		if (!name)
			continue;
		name += 3;
		name[strcspn(name, "\n")] = '\0';
		if (pdepth >= 0 && depth <= pdepth)
			pdepth = -1;
		if (pdepth >= 0 && depth == pdepth + 1 && !strcmp(name, child))
			found = true;
		if (pdepth < 0 && !strcmp(name, parent))
			pdepth = depth;
	}
	fclose(f);
	return found;
}

static bool cxl_test_available(void)
{
	return sh("modprobe -n -q cxl_test") == 0;
}

/*
 * The harness prints "RUN <test>" before a test starts; on a pipe that line
 * would sit in the buffer until the test ends. Flush per line, so that a
 * console log cut short (a hang, a crash) shows which test was running.
 */
static void __attribute__((constructor)) line_buffered(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

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
	ASSERT_FALSE(module_loaded("cxl_test")) TH_LOG("cxl_test still loaded from before");
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

TEST_F_TIMEOUT(cxl_sr, owner, 300)
{
	struct dax_dev devs[MAX_DAX];
	char buf[64];
	int i, n;

	if (!strcmp(variant->params, "hmem_test=1")) {
		ASSERT_TRUE(wait_for(cxl_owns_one, SETTLE_MS))
			TH_LOG("region0 commit=%s, CXL dax devices: %d",
			       read_line(buf, sizeof(buf), CXL_DEVS "/region0/commit"),
			       count_owned(OWNER_CXL));
		EXPECT_EQ(0, count_owned(OWNER_HMEM));
		EXPECT_EQ(0, count_glob(HMEM_TEST_DEV "/hmem.*"));
		EXPECT_TRUE(iomem_nested("CXL Window 0", "region0"));
		EXPECT_TRUE(dax_ranges_disjoint());
		n = list_dax(devs);
		for (i = 0; i < n; i++)
			if (devs[i].owner == OWNER_CXL)
				EXPECT_TRUE(iomem_nested("region0", devs[i].name))
					TH_LOG("%s not nested under region0 in /proc/iomem",
					       devs[i].name);
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
		EXPECT_EQ(0, count_owned(OWNER_HMEM));
	}
}

static int write_str(const char *val, const char *fmt, ...)
{
	char path[PATH_MAX];
	va_list ap;
	int fd, rc = 0;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* The root decoder (CXL window) a region sits under, e.g. "decoder0.0". */
static bool region_root_decoder(const char *region, char *out, size_t len)
{
	char path[PATH_MAX], real[PATH_MAX];
	char *slash;

	snprintf(path, sizeof(path), CXL_DEVS "/%s", region);
	if (!realpath(path, real))
		return false;
	slash = strrchr(real, '/');
	if (!slash)
		return false;
	*slash = '\0';
	slash = strrchr(real, '/');
	snprintf(out, len, "%s", slash ? slash + 1 : real);
	return true;
}

/*
 * HMEM owns the Soft Reserved range (the auto-region failed to assemble).
 * The stale, never-committed region0 is deleted first, so that what stands
 * in the way of a new region is HMEM's claim alone.
 */
FIXTURE(hmem_owned) {
	char decoder[32];
	struct dax_dev hmem;
};

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
	ASSERT_EQ(0, write_str("region0", CXL_DEVS "/%s/delete_region", self->decoder));
	ASSERT_FALSE(exists(CXL_DEVS "/region0"));
}

FIXTURE_TEARDOWN(hmem_owned)
{
	unload_stack();
	EXPECT_FALSE(module_loaded("cxl_test"));
}

/* Create a RAM region in the window and ask for `size` bytes of HPA. */
static int try_region_size(const char *decoder, unsigned long long size, char *region,
			   size_t len)
{
	char buf[64];
	int rc;

	read_line(region, len, CXL_DEVS "/%s/create_ram_region", decoder);
	if (!*region)
		return -ENOENT;
	rc = write_str(region, CXL_DEVS "/%s/create_ram_region", decoder);
	if (rc)
		return rc;
	rc = write_str("1", CXL_DEVS "/%s/interleave_ways", region);
	if (rc)
		return rc;
	read_line(buf, sizeof(buf), CXL_DEVS "/%s/interleave_granularity", decoder);
	rc = write_str(buf, CXL_DEVS "/%s/interleave_granularity", region);
	if (rc)
		return rc;
	snprintf(buf, sizeof(buf), "%llu", size);
	return write_str(buf, CXL_DEVS "/%s/size", region);
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
	struct dax_dev devs[MAX_DAX];
	char region[32], size[32];
	int i, n;

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
	n = list_dax(devs);
	EXPECT_EQ(1, count_owned(OWNER_HMEM));
	for (i = 0; i < n; i++) {
		if (devs[i].owner != OWNER_HMEM)
			continue;
		EXPECT_STREQ(self->hmem.name, devs[i].name);
		EXPECT_EQ(self->hmem.start, devs[i].start);
		EXPECT_EQ(self->hmem.size, devs[i].size);
	}
}

/*
 * A reload of dax_hmem, and an unbind/bind of the hmem_platform device, after
 * CXL's initial probe: the range CXL never claimed is HMEM's again, the same
 * range, not left without an owner (7.3 says "deferring range to CXL").
 */
TEST_F_TIMEOUT(hmem_owned, reload_and_rebind_keep_owner, 300)
{
	struct dax_dev devs[MAX_DAX];
	int round, i, n;

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
		n = list_dax(devs);
		for (i = 0; i < n; i++) {
			if (devs[i].owner != OWNER_HMEM)
				continue;
			EXPECT_EQ(self->hmem.start, devs[i].start);
			EXPECT_EQ(self->hmem.size, devs[i].size);
		}
		EXPECT_EQ(0, count_owned(OWNER_CXL));
	}
}

/* d, with the real cxl tool: it reports the same HPA allocation failure. */
TEST_F_TIMEOUT(hmem_owned, create_region_cxl_tool, 300)
{
	unsigned long long window = read_u64(CXL_DEVS "/%s/size", self->decoder);
	char out[512] = "";
	FILE *p;
	int rc;

	if (sh("command -v cxl >/dev/null"))
		SKIP(return, "the cxl tool (ndctl) is not installed");
	snprintf(out, sizeof(out), "cxl create-region -t ram -w 1 -d %s -s %llu 2>&1",
		 self->decoder, window);
	p = popen(out, "r");
	ASSERT_NE(NULL, p);
	out[0] = '\0';
	while (fgets(out + strlen(out), sizeof(out) - strlen(out), p))
		;
	rc = pclose(p);
	if (strstr(out, "not supported yet"))
		SKIP(return, "this cxl tool cannot create ram regions: %s", out);
	EXPECT_NE(0, rc);
	EXPECT_NE(NULL, strstr(out, "Numerical result out of range")) TH_LOG("cxl said: %s", out);
	EXPECT_EQ(1, count_owned(OWNER_HMEM));
	EXPECT_EQ(0, count_glob(CXL_DEVS "/region*"));
}

/* Why the last make_ram_region() failed, for the test log. */
static char region_err[256];

static int region_fail(int rc, const char *what, const char *name)
{
	snprintf(region_err, sizeof(region_err), "%s %s: %s", what, name, strerror(-rc));
	return rc;
}

/*
 * Endpoint decoder X.0 of each memdev firmware left alone: no endpoint
 * decoder of its port holds DPA. (Endpoint decoders allocate in id order.)
 */
static int free_endpoint_decoders(char names[][32], int max)
{
	char pattern[PATH_MAX];
	glob_t g, port;
	size_t i, j;
	int n = 0;

	if (glob(CXL_DEVS "/decoder*.0/dpa_size", 0, NULL, &g))
		return 0;
	for (i = 0; i < g.gl_pathc && n < max; i++) {
		char name[32];
		bool busy = false;

		/* .../decoderP.0/dpa_size -> decoderP.0 */
		snprintf(name, sizeof(name), "%s", g.gl_pathv[i] + strlen(CXL_DEVS "/"));
		name[strcspn(name, "/")] = '\0';
		snprintf(pattern, sizeof(pattern), CXL_DEVS "/%.*s.*/dpa_size",
			 (int)(strrchr(name, '.') - name), name);
		if (glob(pattern, 0, NULL, &port))
			continue;
		for (j = 0; j < port.gl_pathc; j++)
			busy |= read_u64("%s", port.gl_pathv[j]) != 0;
		globfree(&port);
		if (!busy)
			snprintf(names[n++], 32, "%s", name);
	}
	globfree(&g);
	return n;
}

/*
 * A one-way RAM region of `size` bytes in root decoder `root`, made the way
 * `cxl create-region` makes it, through sysfs: HPA, then the DPA of the
 * first free memdev the window reaches, target, commit, bind.
 */
static int make_ram_region(const char *root, unsigned long long size, char *region,
			   size_t len)
{
	char cand[32][32], buf[64];
	int i, n = free_endpoint_decoders(cand, 32), rc;

	region_err[0] = '\0';
	rc = try_region_size(root, size, region, len);
	if (rc)
		return region_fail(rc, "HPA allocation for", region);
	snprintf(buf, sizeof(buf), "%llu", size);
	for (i = 0; i < n; i++) {
		if (!write_str("ram", CXL_DEVS "/%s/mode", cand[i]) &&
		    !write_str(buf, CXL_DEVS "/%s/dpa_size", cand[i]) &&
		    !write_str(cand[i], CXL_DEVS "/%s/target0", region))
			break;
		write_str("0", CXL_DEVS "/%s/dpa_size", cand[i]);
	}
	if (i == n)
		return region_fail(-ENODEV, "no free memdev reachable from", root);
	rc = write_str("1", CXL_DEVS "/%s/commit", region);
	if (rc)
		return region_fail(rc, "commit", region);
	rc = write_str(region, "/sys/bus/cxl/drivers/cxl_region/bind");
	if (rc)
		return region_fail(rc, "bind", region);
	return 0;
}

static bool region_committed(const char *region)
{
	char buf[16];

	return !strcmp(read_line(buf, sizeof(buf), CXL_DEVS "/%s/commit", region), "1");
}

static bool cxl_owns_two(void)
{
	return owns_bound(OWNER_CXL, 2);
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

TEST_F_TIMEOUT(innocent, survives_dax_hmem_reload, 300)
{
	unsigned long long sr = read_u64(CXL_DEVS "/%s/resource", "region0");
	unsigned long long sr_size = read_u64(CXL_DEVS "/%s/size", "region0");

	/* What makes it innocent: not a byte of it is Soft Reserved. */
	EXPECT_TRUE(self->start >= sr + sr_size || self->start + self->size <= sr);
	EXPECT_TRUE(dax_ranges_disjoint());

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
}

/* Kernel log lines written since kmsg_mark(). */
static int kmsg_fd = -1;
static char *kmsg_text;
static size_t kmsg_len;

static void kmsg_mark(void)
{
	if (kmsg_fd < 0)
		kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg_fd >= 0)
		lseek(kmsg_fd, 0, SEEK_END);
	kmsg_len = 0;
}

static bool kmsg_has(const char *needle)
{
	char rec[8192];
	ssize_t n;

	while (kmsg_fd >= 0 && (n = read(kmsg_fd, rec, sizeof(rec) - 1)) > 0) {
		char *msg = strchr(rec, ';'), *grown;

		rec[n] = '\0';
		msg = msg ? msg + 1 : rec;
		msg[strcspn(msg, "\n")] = '\0';
		grown = realloc(kmsg_text, kmsg_len + strlen(msg) + 2);
		if (!grown)
			break;
		kmsg_text = grown;
		kmsg_len += sprintf(kmsg_text + kmsg_len, "%s\n", msg);
	}
	return kmsg_len && strstr(kmsg_text, needle);
}

static bool dax_region_conflict_logged(void)
{
	return kmsg_has("dax_region resource conflict");
}

static bool hmem_region_present(void)
{
	return count_glob(HMEM_TEST_DEV "/hmem.*/dax_region") == 1;
}

/* The size of HMEM's dax region: the span it holds in the arbiter. */
static unsigned long long hmem_region_size(void)
{
	unsigned long long size = 0;
	glob_t g;

	if (glob(HMEM_TEST_DEV "/hmem.*/dax_region/size", 0, NULL, &g))
		return 0;
	size = read_u64("%s", g.gl_pathv[0]);
	globfree(&g);
	return size;
}

/* The first /proc/iomem entry called `name`: its range, or false. */
static bool iomem_find(const char *name, unsigned long long *start, unsigned long long *end)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/iomem", "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *sep;

		line[strcspn(line, "\n")] = '\0';
		sep = strstr(line, " : ");
		if (sep && !strcmp(sep + 3, name))
			found = sscanf(line, " %llx-%llx", start, end) == 2;
	}
	fclose(f);
	return found;
}

static bool soft_reserved_published(void)
{
	unsigned long long start, end;

	return iomem_find("Soft Reserved", &start, &end);
}

/*
 * HMEM owns the Soft Reserved range with dax_hmem.region_idle=1: it holds
 * the range in the "DAX Regions" arbiter but its dax device claims nothing
 * in iomem. What stops a CXL region over that range then:
 * - 7.3 (publish_soft_reserved=0): nothing stops its HPA allocation, it
 *   commits, and its dax_region loses in the arbiter; f: the loss is
 *   visible (conflict and -12 probe error in the log, dax_regionN unbound).
 * - plan B (publish_soft_reserved=1): "Soft Reserved" is in iomem exactly
 *   where HMEM owns, so the HPA allocation fails with -ERANGE; then the
 *   seed's order: disable the HMEM device, its entry goes, the region is
 *   created over the same HPA and CXL owns it.
 */
FIXTURE(hmem_idle) {
	char root[32];
	unsigned long long sr, sr_size;
};

FIXTURE_VARIANT(hmem_idle) {
	const char *dax_hmem_params;
	bool published;
};

FIXTURE_VARIANT_ADD(hmem_idle, unpublished) {
	.dax_hmem_params = "region_idle=1",
	.published = false,
};

FIXTURE_VARIANT_ADD(hmem_idle, published) {
	.dax_hmem_params = "region_idle=1 publish_soft_reserved=1",
	.published = true,
};

FIXTURE_SETUP(hmem_idle)
{
	if (!cxl_test_available())
		SKIP(return, "cxl_test is not installed for this kernel");
	unload_stack();
	ASSERT_EQ(0, sh("modprobe dax_hmem %s", variant->dax_hmem_params));
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

static bool cxl_owns_sr(void)
{
	return owns_bound(OWNER_CXL, 1);
}

/* Disable HMEM's device (hmem.N under the test's hmem_platform). */
static int hmem_let_go(void)
{
	char hmem[PATH_MAX];
	glob_t g;

	if (glob(HMEM_TEST_DEV "/hmem.*", 0, NULL, &g))
		return -ENOENT;
	snprintf(hmem, sizeof(hmem), "%s", strrchr(g.gl_pathv[0], '/') + 1);
	globfree(&g);
	return write_str(hmem, "/sys/bus/platform/drivers/hmem/unbind");
}

struct sr_window {
	const char *root;
	unsigned long long sr, sr_size;
};

static void cxl_loses_visibly(struct __test_metadata *_metadata, const struct sr_window *self)
{
	char region[32], dax_region[48], msg[128];

	kmsg_mark();
	ASSERT_EQ(0, make_ram_region(self->root, self->sr_size, region, sizeof(region)))
		TH_LOG("%s", region_err);
	EXPECT_EQ(self->sr, read_u64(CXL_DEVS "/%s/resource", region));

	snprintf(dax_region, sizeof(dax_region), "dax_%s", region);
	ASSERT_TRUE(wait_for(dax_region_conflict_logged, DRIVER_BOUND_MS))
		TH_LOG("no \"dax_region resource conflict\" in the kernel log");
	snprintf(msg, sizeof(msg), "%s: probe with driver cxl_dax_region failed with error -12",
		 dax_region);
	EXPECT_TRUE(kmsg_has(msg)) TH_LOG("missing: %s", msg);
	EXPECT_TRUE(exists(CXL_DEVS "/%s", dax_region));
	EXPECT_FALSE(exists(CXL_DEVS "/%s/driver", dax_region));

	/* One owner: HMEM's region, whole; no CXL dax device anywhere. */
	EXPECT_EQ(0, count_owned(OWNER_CXL));
	ASSERT_TRUE(hmem_region_present());
	EXPECT_EQ(self->sr_size, hmem_region_size());

	/*
	 * Handoff: nothing retries the loser by itself (its probe failed with
	 * -ENOMEM, not a deferral). The user step: disable the HMEM device,
	 * then disable and enable the region; CXL owns the range.
	 */
	ASSERT_EQ(0, hmem_let_go());
	EXPECT_FALSE(hmem_region_present());
	EXPECT_EQ(0, count_owned(OWNER_CXL));
	ASSERT_EQ(0, write_str(region, "/sys/bus/cxl/drivers/cxl_region/unbind"));
	ASSERT_EQ(0, write_str(region, "/sys/bus/cxl/drivers/cxl_region/bind"));
	ASSERT_TRUE(wait_for(cxl_owns_sr, SETTLE_MS))
		TH_LOG("%s got no dax device after HMEM let go", region);
	EXPECT_TRUE(dax_ranges_disjoint());
}

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

	if (variant->published)
		hmem_range_published(_metadata, &w);
	else
		cxl_loses_visibly(_metadata, &w);
}

TEST_HARNESS_MAIN
