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

#define MAX_SR	4
struct sr {
	unsigned long long start, size;
};

/* The Soft Reserved ranges memmap=SIZE%START+0xefffffff asked e820 for. */
static int cmdline_soft_reserved(struct sr *sr, int max)
{
	char buf[4096], *at, *end, *unit;
	int n = 0;

	if (!read_line(buf, sizeof(buf), "/proc/cmdline")[0])
		return 0;
	for (at = buf; n < max && (at = strstr(at, "memmap=")); at++) {
		sr[n].size = strtoull(at + strlen("memmap="), &end, 0);
		unit = *end ? strchr("KMG", *end) : NULL;
		if (unit) {
			sr[n].size <<= 10 * (unit - "KMG" + 1);
			end++;
		}
		if (*end != '%')
			continue;
		sr[n].start = strtoull(end + 1, &end, 0);
		if (!strncmp(end, "+0xefffffff", strlen("+0xefffffff")))
			n++;
	}
	return n;
}

/*
 * What platform firmware does before the OS on a machine with a region it
 * set up (CXL 3.1 8.2.4.20, 9.13): commit HDM decoder 0 of the host bridge
 * (its one root port as target) and of the endpoint (DPA 0 of the volatile
 * partition) over the start of a CXL window, one way, 256 B granularity,
 * host-only coherent; HDM decoding on in both and Mem_Enable in the
 * endpoint's DVSEC. cxl_port reads committed decoders once, when it probes,
 * and assembles a region from them: this runs before any CXL driver loads.
 */
#define PCI_CFG_CMD		0x04
#define  PCI_CMD_MEMORY		0x2
#define PCI_EXT_CAP_DVSEC	0x23
#define CXL_VENDOR		0x1e98
#define CXL_DVSEC_DEVICE	0
#define  CXL_DVSEC_CTRL		0x0c
#define  CXL_DVSEC_MEM_ENABLE	0x4
#define CXL_DVSEC_REG_LOCATOR	8
#define CXL_REGBLOCK_COMPONENT	1
#define CXL_CM_OFFSET		0x1000
#define CXL_CM_CAP_HDM		5
#define CXL_COMPONENT_SIZE	0x10000
#define HDM_GLOBAL_CTRL		0x4
#define  HDM_ENABLE		0x2
#define HDM_DECODER0		0x10
#define  HDM_BASE_LO		0x0
#define  HDM_BASE_HI		0x4
#define  HDM_SIZE_LO		0x8
#define  HDM_SIZE_HI		0xc
#define  HDM_CTRL		0x10
#define   HDM_CTRL_COMMIT	0x200
#define   HDM_CTRL_COMMITTED	0x400
#define   HDM_CTRL_ERR		0x800
#define   HDM_CTRL_HOSTONLY	0x1000
#define  HDM_TARGET_LO		0x14	/* an endpoint's: DPA skip */
#define  HDM_TARGET_HI		0x18

struct cedt_window {
	unsigned long long base, size;
	unsigned int bridge;		/* the UID of its (first) host bridge */
	unsigned long long chbcr;	/* that bridge's component registers */
};

/* The CEDT's windows and their host bridges' registers (CXL 3.1 9.18). */
static int cedt_windows(struct cedt_window *w, int max)
{
	unsigned long long chbcr[8] = { 0 };
	unsigned int uid[8], slen;
	unsigned char t[4096];
	int fd, i, n = 0, nb = 0;
	ssize_t len;
	size_t at;

	fd = open("/sys/firmware/acpi/tables/CEDT", O_RDONLY);
	if (fd < 0)
		return -errno;
	len = read(fd, t, sizeof(t));
	close(fd);
	for (at = 36; len > 0 && at + 4 <= (size_t)len; at += slen) {
		slen = t[at + 2] | t[at + 3] << 8;
		if (slen < 4 || at + slen > (size_t)len)
			break;
		if (t[at] == 0 && slen >= 32 && nb < 8) {		/* CHBS */
			memcpy(&uid[nb], t + at + 4, 4);
			memcpy(&chbcr[nb++], t + at + 16, 8);
		} else if (t[at] == 1 && slen >= 40 && n < max) {	/* CFMWS */
			memcpy(&w[n].base, t + at + 8, 8);
			memcpy(&w[n].size, t + at + 16, 8);
			memcpy(&w[n].bridge, t + at + 36, 4);
			w[n++].chbcr = 0;
		}
	}
	for (i = 0; i < n * nb; i++)
		if (uid[i % nb] == w[i / nb].bridge)
			w[i / nb].chbcr = chbcr[i % nb];
	return n;
}

/* The PCI address of the CXL memory device below host bridge `uid`. */
static bool bridge_memdev(unsigned int uid, char *bdf, size_t len)
{
	char path[PATH_MAX], bridge[PATH_MAX] = "", real[PATH_MAX], buf[64];
	bool found = false;
	size_t blen, i;
	glob_t g;

	if (glob("/sys/bus/acpi/devices/ACPI0016:*", 0, NULL, &g))
		return false;
	for (i = 0; i < g.gl_pathc && !bridge[0]; i++) {
		if (strtoul(read_line(buf, sizeof(buf), "%s/uid", g.gl_pathv[i]), NULL, 0) != uid)
			continue;
		snprintf(path, sizeof(path), "%s/physical_node", g.gl_pathv[i]);
		if (!realpath(path, bridge))
			bridge[0] = '\0';
	}
	globfree(&g);
	blen = strlen(bridge);
	if (!blen || glob("/sys/bus/pci/devices/*", 0, NULL, &g))
		return false;
	for (i = 0; i < g.gl_pathc && !found; i++) {
		/* Class 0x0502, programming interface 0x10: a CXL memory device. */
		if (strtoul(read_line(buf, sizeof(buf), "%s/class", g.gl_pathv[i]), NULL, 0) !=
		    0x050210 || !realpath(g.gl_pathv[i], real) || strncmp(real, bridge, blen))
			continue;
		snprintf(bdf, len, "%s", strrchr(g.gl_pathv[i], '/') + 1);
		found = true;
	}
	globfree(&g);
	return found;
}

/* The offset of CXL DVSEC `id` in config space `cfg`, or 0. */
static unsigned int cxl_dvsec(const unsigned char *cfg, size_t len, unsigned int id)
{
	unsigned int at = 0x100, hdr, h1, h2;

	while (at && at + 12 <= len) {
		memcpy(&hdr, cfg + at, 4);
		memcpy(&h1, cfg + at + 4, 4);
		memcpy(&h2, cfg + at + 8, 4);
		if ((hdr & 0xffff) == PCI_EXT_CAP_DVSEC && (h1 & 0xffff) == CXL_VENDOR &&
		    (h2 & 0xffff) == id)
			return at;
		at = hdr >> 20;
	}
	return 0;
}

/* A 32-bit register access the compiler neither elides, merges nor splits. */
static unsigned int mmio_read(char *base, unsigned int off)
{
	return __atomic_load_n((unsigned int *)(base + off), __ATOMIC_RELAXED);
}

static void mmio_write(char *base, unsigned int off, unsigned int val)
{
	__atomic_store_n((unsigned int *)(base + off), val, __ATOMIC_RELAXED);
}

/*
 * Commit HDM decoder 0 of the component registers mapped at `regs`, then
 * turn HDM decoding on: a host bridge's decodes to `target`, an endpoint's
 * from DPA `target`. Already committed: left as it is.
 */
static int hdm_commit(void *regs, unsigned long long base, unsigned long long size,
		      unsigned int target, char *why, size_t wlen)
{
	char *cm = (char *)regs + CXL_CM_OFFSET, *hdm = NULL, *dec;
	unsigned int i, hdr;

	for (i = 1; i <= mmio_read(cm, 0) >> 24 && !hdm; i++) {
		hdr = mmio_read(cm, 4 * i);
		if ((hdr & 0xffff) == CXL_CM_CAP_HDM)
			hdm = cm + (hdr >> 20);
	}
	if (!hdm) {
		snprintf(why, wlen, "no HDM decoder capability");
		return -ENODEV;
	}
	dec = hdm + HDM_DECODER0;
	if (mmio_read(dec, HDM_CTRL) & HDM_CTRL_COMMITTED)
		return 0;
	mmio_write(dec, HDM_BASE_LO, base & 0xf0000000);
	mmio_write(dec, HDM_BASE_HI, base >> 32);
	mmio_write(dec, HDM_SIZE_LO, size & 0xf0000000);
	mmio_write(dec, HDM_SIZE_HI, size >> 32);
	mmio_write(dec, HDM_TARGET_LO, target);
	mmio_write(dec, HDM_TARGET_HI, 0);
	/* One way, 256 B granularity: both fields 0. */
	mmio_write(dec, HDM_CTRL, HDM_CTRL_HOSTONLY | HDM_CTRL_COMMIT);
	for (i = 0; i < 100 && !(mmio_read(dec, HDM_CTRL) & HDM_CTRL_COMMITTED); i++)
		usleep(10000);
	hdr = mmio_read(dec, HDM_CTRL);
	if ((hdr & (HDM_CTRL_COMMITTED | HDM_CTRL_ERR)) != HDM_CTRL_COMMITTED) {
		snprintf(why, wlen, "decoder 0 did not commit (control %#x)", hdr);
		return -EIO;
	}
	mmio_write(hdm, HDM_GLOBAL_CTRL, mmio_read(hdm, HDM_GLOBAL_CTRL) | HDM_ENABLE);
	return 0;
}

/* Map `len` bytes at `off` of file `path` (a PCI BAR, /dev/mem) and commit there. */
static int commit_at(const char *path, unsigned long long off, unsigned long long base,
		     unsigned long long size, unsigned int target, char *why, size_t wlen)
{
	int fd = open(path, O_RDWR | O_SYNC), rc;
	void *map;

	if (fd < 0) {
		snprintf(why, wlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	map = mmap(NULL, CXL_COMPONENT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
	rc = map == MAP_FAILED ? -errno : 0;
	close(fd);
	if (rc) {
		snprintf(why, wlen, "mmap %s at %#llx: %s", path, off, strerror(-rc));
		return rc;
	}
	rc = hdm_commit(map, base, size, target, why, wlen);
	munmap(map, CXL_COMPONENT_SIZE);
	return rc;
}

/* Firmware's region: `size` bytes at the start of window `w`. */
static int firmware_region(const struct cedt_window *w, unsigned long long size,
			   char *why, size_t wlen)
{
	unsigned int dev, loc, len, lo, hi, bir = 0, at;
	unsigned long long off = ~0ULL;
	unsigned char cfg[4096];
	char path[PATH_MAX], bdf[32];
	unsigned short reg;
	ssize_t n;
	int fd, rc;

	if (!bridge_memdev(w->bridge, bdf, sizeof(bdf))) {
		snprintf(why, wlen, "no CXL memory device below host bridge %u", w->bridge);
		return -ENODEV;
	}
	/* The host bridge: its one root port is port 0 (QEMU's cxl-rp port=0). */
	rc = commit_at("/dev/mem", w->chbcr, w->base, size, 0, why, wlen);
	if (rc)
		return rc;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_RDWR);
	n = fd < 0 ? -1 : pread(fd, cfg, sizeof(cfg), 0);
	dev = cxl_dvsec(cfg, n > 0 ? n : 0, CXL_DVSEC_DEVICE);
	loc = cxl_dvsec(cfg, n > 0 ? n : 0, CXL_DVSEC_REG_LOCATOR);
	if (loc) {
		memcpy(&len, cfg + loc + 4, 4);
		for (at = loc + 0xc; at + 8 <= loc + (len >> 20) && off == ~0ULL; at += 8) {
			memcpy(&lo, cfg + at, 4);
			memcpy(&hi, cfg + at + 4, 4);
			if (((lo >> 8) & 0xff) != CXL_REGBLOCK_COMPONENT)
				continue;
			bir = lo & 0x7;
			off = (unsigned long long)hi << 32 | (lo & 0xffff0000);
		}
	}
	if (!dev || off == ~0ULL) {
		snprintf(why, wlen, "%s: no CXL DVSEC or component registers", bdf);
		rc = -ENODEV;
		goto out;
	}
	memcpy(&reg, cfg + PCI_CFG_CMD, 2);
	reg |= PCI_CMD_MEMORY;
	if (pwrite(fd, &reg, 2, PCI_CFG_CMD) != 2) {
		rc = -errno;
		snprintf(why, wlen, "%s: memory decoding: %s", bdf, strerror(errno));
		goto out;
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource%u", bdf, bir);
	rc = commit_at(path, off, w->base, size, 0, why, wlen);
	if (rc)
		goto out;
	memcpy(&reg, cfg + dev + CXL_DVSEC_CTRL, 2);
	reg |= CXL_DVSEC_MEM_ENABLE;
	if (pwrite(fd, &reg, 2, dev + CXL_DVSEC_CTRL) != 2) {
		rc = -errno;
		snprintf(why, wlen, "%s: Mem_Enable: %s", bdf, strerror(errno));
	}
out:
	if (fd >= 0)
		close(fd);
	return rc;
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
	struct sr sr[MAX_SR];
	int i, n;

	n = cmdline_soft_reserved(sr, MAX_SR);
	if (n != 1)
		SKIP(return, "%d memmap=SIZE%%START+0xefffffff ranges: this machine has one", n);
	self->sr_start = sr[0].start;
	self->sr_size = sr[0].size;
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
 * daxctl puts `dax` online as System RAM (kmem may hold it already, offline:
 * memhp_default_state=offline; else reconfiguring it onlines it), then a
 * process uses USE_BYTES of it (use_node_memory()). 0, or -1 with why.
 */
static int online_and_use(const struct dax_dev *dax, char *why, size_t len)
{
	char cmd[128], out[1024], node[16];
	int rc;

	snprintf(cmd, sizeof(cmd), "daxctl %s %s 2>&1", driver_is(dax->name, "kmem") ?
		 "online-memory" : "reconfigure-device --mode=system-ram", dax->name);
	rc = run_tool(out, sizeof(out), cmd);
	printf("# %s: exit %d: %s", cmd, rc, out);
	if (rc) {
		snprintf(why, len, "%s: exit %d", cmd, rc);
		return -1;
	}
	if (!read_line(node, sizeof(node), DAX_DEVS "/%s/target_node", dax->name)[0]) {
		snprintf(why, len, "%s: no target_node", dax->name);
		return -1;
	}
	return use_node_memory(atoi(node), dax->start, dax->size, USE_BYTES, why, len);
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
	char cmd[256], out[4096], why[256], region[32];
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

	EXPECT_EQ(0, online_and_use(&cxl, why, sizeof(why))) TH_LOG("%s", why);

	/* HMEM comes back: its dax region loses to CXL's. */
	kmsg_mark();
	EXPECT_NE(0, write_str(self->hmem, HMEM_DRIVER "/bind"));
	EXPECT_EQ(0, count_owned(OWNER_HMEM)) TH_LOG("HMEM made a dax device over CXL's range");
	EXPECT_TRUE(kmsg_has("dax_region resource conflict"));
	EXPECT_TRUE(cxl_dax_in(region, &cxl)) TH_LOG("CXL's dax device lost its driver");
}

/*
 * The second machine: firmware set up a region at the start of each window
 * before the OS (firmware_region()) and described Soft Reserved over each
 * whole window. Window 0's range is larger than its region (512M over
 * 256M), window 1's is its region (256M). The host bridges have HDM
 * decoders (QEMU's hdm_for_passthrough=on): under one that passes through,
 * 7.3 cannot assemble a firmware region ("failed to find decoder mapping").
 */
static const unsigned long long firmware_mib[] = { 256, 256 };
static struct cedt_window fw[ARRAY_SIZE(firmware_mib)];

FIXTURE(hw_firmware) {
	char region[ARRAY_SIZE(firmware_mib)][32];
};

/* Each window's range, and who 7.3 gives it to. */
FIXTURE_VARIANT(hw_firmware) {
	int window;
	enum owner owner;
	const char *bug;	/* 7.3 leaves the range to nobody who can use it */
};

FIXTURE_VARIANT_ADD(hw_firmware, range_is_region) {
	.window = 1, .owner = OWNER_CXL,
};

/*
 * No region contains the range, so HMEM takes all of it and the region's
 * dax region loses the DAX Regions arbitration; but the region's HPA, in
 * /proc/iomem, keeps kmem off HMEM's device (cxl_test's "partial" layout).
 */
FIXTURE_VARIANT_ADD(hw_firmware, range_larger) {
	.window = 0, .owner = OWNER_HMEM,
	.bug = "the region's HPA keeps kmem off HMEM's device: the range is idle",
};

/* The dax device of `owner` whose range starts at `start`, in out. */
static bool dax_at(enum owner owner, unsigned long long start, struct dax_dev *out)
{
	struct dax_dev devs[MAX_DAX];
	int i, n = list_dax(devs);

	for (i = 0; i < n; i++) {
		if (devs[i].owner == owner && devs[i].start == start) {
			*out = devs[i];
			return true;
		}
	}
	return false;
}

/* A probe of `dev` is over: a driver holds it, or the kernel said it failed. */
static bool probe_done(const char *dev, bool bound)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "%.64s: probe with driver", dev);
	return bound || kmsg_has(msg);
}

/* Every dax device's probe is over. */
static bool dax_probed(void)
{
	struct dax_dev devs[MAX_DAX];
	int i, n = list_dax(devs);

	for (i = 0; i < n; i++)
		if (!probe_done(devs[i].name, devs[i].bound))
			return false;
	return true;
}

/*
 * Window `i` decided, whichever way: firmware's region there committed and
 * probed, with its dax region (if it made one: a region over HMEM's claim
 * yields) probed too, bound or failed; HMEM said what it did with the range
 * (dax_hmem.dyndbg=+p), or has a device there.
 */
static bool window_settled(int i)
{
	unsigned long long end = fw[i].base + fw[i].size - 1;
	char r[32], dax_region[48], msg[128];
	struct dax_dev dax;

	if (!cxl_dev_holding("region*", "resource", fw[i].base, r, sizeof(r)) ||
	    !region_committed(r) || !probe_done(r, exists(CXL_DEVS "/%s/driver", r)))
		return false;
	snprintf(dax_region, sizeof(dax_region), "dax_region%s", r + strlen("region"));
	if (exists(CXL_DEVS "/%s", dax_region) &&
	    !probe_done(dax_region, exists(CXL_DEVS "/%s/driver", dax_region)))
		return false;
	if (dax_at(OWNER_HMEM, fw[i].base, &dax))
		return true;
	snprintf(msg, sizeof(msg), "registering: [mem %#010llx-%#010llx", fw[i].base, end);
	if (kmsg_has(msg))
		return true;
	snprintf(msg, sizeof(msg), "dropping: [mem %#010llx-%#010llx", fw[i].base, end);
	return kmsg_has(msg);
}

static bool firmware_settled(void)
{
	size_t i;

	kmsg_rewind();
	for (i = 0; i < ARRAY_SIZE(fw); i++)
		if (!window_settled(i))
			return false;
	return dax_probed();
}

/* What a failed settle needs in the log: the windows' iomem, the tools' view. */
static void dump_machine(void)
{
	fflush(stdout);
	sh("sed -n '/CXL Window 0/,$p' /proc/iomem; cxl list -RDMu; daxctl list -u");
}

/*
 * The firmware machine (two CXL windows, Soft Reserved over each): fw[] read
 * from its CEDT and checked against the command line. Why not, in why.
 */
static bool firmware_machine(char *why, size_t len)
{
	struct sr sr[MAX_SR];
	int i, n = cmdline_soft_reserved(sr, MAX_SR);

	if (cedt_windows(fw, ARRAY_SIZE(fw)) != ARRAY_SIZE(fw) || n != ARRAY_SIZE(fw)) {
		snprintf(why, len, "not the firmware machine: two windows, each Soft Reserved");
		return false;
	}
	for (i = 0; i < n; i++) {
		if (sr[i].start != fw[i].base || sr[i].size != fw[i].size) {
			snprintf(why, len, "window %d %#llx+%#llx, Soft Reserved %#llx+%#llx",
				 i, fw[i].base, fw[i].size, sr[i].start, sr[i].size);
			return false;
		}
	}
	return true;
}

/* A new file `path` holding `text` (write_str() only writes what exists). */
static int create_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		rc = -EIO;
	close(fd);
	return rc;
}

/*
 * Firmware's regions, then the order of loading a fixture is about: once
 * per boot, before any CXL driver loads, and marked as done by `fixture`
 * (another fixture that loaded CXL first leaves nothing to test here).
 */
static int firmware_then(const char *fixture, int (*load)(void), char *why, size_t len)
{
	char mark[64];
	size_t i;
	int rc;

	snprintf(mark, sizeof(mark), "/run/cxl-sr-%s", fixture);
	if (exists("%s", mark))
		return 0;
	if (module_loaded("cxl_core") || module_loaded("dax_hmem")) {
		snprintf(why, len, "CXL or HMEM loaded before %s: run its cases alone (-f %s)",
			 fixture, fixture);
		return -EBUSY;
	}
	for (i = 0; i < ARRAY_SIZE(fw); i++) {
		rc = firmware_region(&fw[i], firmware_mib[i] << 20, why, len);
		if (rc)
			return rc;
	}
	rc = load();
	if (!rc)
		rc = create_file(mark, "1\n");
	if (rc)
		snprintf(why, len, "%s: loading the drivers failed (%d)", fixture, rc);
	return rc;
}

static int load_all(void)
{
	coldplug();
	return 0;
}

FIXTURE_SETUP(hw_firmware)
{
	char why[256];
	size_t i;

	ASSERT_FALSE(module_loaded("cxl_test") || module_loaded("cxl_mock"))
		TH_LOG("cxl_test is loaded: this run must use the tree's own modules");
	if (!firmware_machine(why, sizeof(why)))
		SKIP(return, "%s", why);
	ASSERT_EQ(0, firmware_then("hw_firmware", load_all, why, sizeof(why))) TH_LOG("%s", why);
	if (!wait_for(firmware_settled, SETTLE_MS))
		dump_machine();
	ASSERT_TRUE(firmware_settled())
		TH_LOG("the firmware regions and HMEM's range did not settle");
	for (i = 0; i < ARRAY_SIZE(fw); i++) {
		ASSERT_TRUE(cxl_dev_holding("region*", "resource", fw[i].base, self->region[i],
					    sizeof(self->region[i])));
	}
}

FIXTURE_TEARDOWN(hw_firmware)
{
}

/*
 * HMEM deferred the range to CXL, which had assembled firmware's region
 * from the committed decoders; then the variant's owner took the range, and
 * the other lost (CXL's dax region in the DAX Regions arbitration) or
 * dropped it (HMEM). What a maintainer wants, an owner that can use the
 * range, is checked last.
 */
TEST_F_TIMEOUT(hw_firmware, owner, 300)
{
	const struct cedt_window *w = &fw[variant->window];
	unsigned long long end = w->base + w->size - 1;
	unsigned long long rsize = firmware_mib[variant->window] << 20;
	const char *r = self->region[variant->window];
	struct dax_dev dax, cxl, hmem;
	char msg[160];

	EXPECT_TRUE(region_committed(r));
	EXPECT_EQ(w->base, read_u64(CXL_DEVS "/%s/resource", r));
	EXPECT_EQ(rsize, read_u64(CXL_DEVS "/%s/size", r));
	kmsg_rewind();
	snprintf(msg, sizeof(msg), "await CXL initial probe: [mem %#010llx-%#010llx", w->base, end);
	EXPECT_TRUE(kmsg_has(msg)) TH_LOG("HMEM did not defer: no \"%s\"", msg);

	if (variant->owner == OWNER_CXL) {
		snprintf(msg, sizeof(msg), "CXL claims resource, dropping: [mem %#010llx-%#010llx",
			 w->base, end);
		EXPECT_TRUE(kmsg_has(msg)) TH_LOG("no \"%s\"", msg);
		EXPECT_FALSE(dax_at(OWNER_HMEM, w->base, &hmem)) TH_LOG("HMEM has %s", hmem.name);
		ASSERT_TRUE(cxl_dax_in(r, &dax)) TH_LOG("%s has no CXL dax device bound", r);
	} else {
		snprintf(msg, sizeof(msg),
			 "CXL did not claim resource, registering: [mem %#010llx-%#010llx",
			 w->base, end);
		EXPECT_TRUE(kmsg_has(msg)) TH_LOG("no \"%s\"", msg);
		snprintf(msg, sizeof(msg),
			 "dax_region resource conflict for [mem %#010llx-%#010llx]",
			 w->base, w->base + rsize - 1);
		EXPECT_TRUE(kmsg_has(msg)) TH_LOG("no \"%s\"", msg);
		EXPECT_FALSE(cxl_dax_in(r, &cxl)) TH_LOG("%s has CXL's %s", r, cxl.name);
		ASSERT_TRUE(dax_at(OWNER_HMEM, w->base, &dax))
			TH_LOG("HMEM did not take the range");
	}
	EXPECT_EQ(w->size, dax.size);
	if (variant->bug) {
		EXPECT_FALSE(dax.bound) TH_LOG("%s is bound: the bug is gone?", dax.name);
		XFAIL_REASON(variant->bug);
	}
	EXPECT_TRUE(dax.bound) TH_LOG("%llu MiB of Soft Reserved nobody can use", w->size >> 20);
}

/*
 * The range is memory: daxctl onlines its owner's dax device and a process
 * uses it, every page inside that device's range.
 */
TEST_F_TIMEOUT(hw_firmware, memory_used, 600)
{
	const struct cedt_window *w = &fw[variant->window];
	struct dax_dev dax;
	char why[256];

	ASSERT_TRUE(dax_at(variant->owner, w->base, &dax));
	if (variant->bug)
		XFAIL_REASON(variant->bug);
	ASSERT_TRUE(dax.bound) TH_LOG("%s: no driver holds it", dax.name);
	EXPECT_EQ(0, online_and_use(&dax, why, sizeof(why))) TH_LOG("%s", why);
}

/* The kernel's known bug (the variant's .bug): each must still fail, on that alone. */
XFAIL_ADD(hw_firmware, range_larger, owner);
XFAIL_ADD(hw_firmware, range_larger, memory_used);

/*
 * A CXL driver that loads late (race R1), on the firmware machine: dax_hmem
 * loads while cxl_acpi and cxl_pci are not there to load (an initramfs
 * without them: here their module files are moved aside, so that
 * dax_hmem_init()'s request_module() finds nothing). HMEM sees no CXL window
 * and takes every range at once; then the CXL drivers load, firmware's
 * regions assemble over HMEM's devices and yield (cxl_test's
 * decision_first). The range is HMEM's and really memory: daxctl moves it
 * to System RAM, a process uses it, and it goes back to device_dax.
 */
FIXTURE(hw_cxl_late) {
	char region[32];	/* firmware's region in window 1 (the range itself) */
	struct dax_dev dax;	/* HMEM's device over it */
};

static const char *const late_modules[] = { "cxl_acpi", "cxl_pci" };

static int load_cxl_late(void)
{
	char path[ARRAY_SIZE(late_modules)][PATH_MAX], aside[PATH_MAX + 8], cmd[64];
	size_t i, n;
	int rc = 0;

	for (n = 0; n < ARRAY_SIZE(late_modules) && !rc; n++) {
		snprintf(cmd, sizeof(cmd), "modinfo -n %s 2>/dev/null", late_modules[n]);
		rc = run_tool(path[n], sizeof(path[n]), cmd) ? -ENOENT : 0;
		path[n][strcspn(path[n], "\n")] = '\0';
		snprintf(aside, sizeof(aside), "%.4000s.late", path[n]);
		if (!rc && rename(path[n], aside))
			rc = -errno;
	}
	if (!rc)
		rc = sh("modprobe dax_hmem && modprobe kmem");
	for (i = 0; i < n; i++) {
		snprintf(aside, sizeof(aside), "%.4000s.late", path[i]);
		rename(aside, path[i]);
	}
	if (rc || module_loaded("cxl_acpi") || module_loaded("cxl_pci"))
		return rc ?: -EEXIST;
	coldplug();
	return 0;
}

/* Both windows decided, and HMEM has its device over window 1. */
static bool cxl_late_settled(void)
{
	struct dax_dev dax;

	return firmware_settled() && dax_at(OWNER_HMEM, fw[1].base, &dax);
}

FIXTURE_SETUP(hw_cxl_late)
{
	char why[256];

	ASSERT_FALSE(module_loaded("cxl_test") || module_loaded("cxl_mock"));
	if (!firmware_machine(why, sizeof(why)))
		SKIP(return, "%s", why);
	ASSERT_EQ(0, firmware_then("hw_cxl_late", load_cxl_late, why, sizeof(why)))
		TH_LOG("%s", why);
	if (!wait_for(cxl_late_settled, SETTLE_MS))
		dump_machine();
	ASSERT_TRUE(cxl_late_settled())
		TH_LOG("firmware's region or HMEM's device over window 1 did not settle");
	ASSERT_TRUE(cxl_dev_holding("region*", "resource", fw[1].base, self->region,
				    sizeof(self->region)));
	ASSERT_TRUE(dax_at(OWNER_HMEM, fw[1].base, &self->dax));
}

FIXTURE_TEARDOWN(hw_cxl_late)
{
}

/*
 * HMEM decided before any CXL window existed: no deferral, all of the range,
 * its device bound; firmware's region committed later over it and yielded
 * (no dax region, so no CXL dax device).
 */
TEST_F_TIMEOUT(hw_cxl_late, hmem_keeps_the_range, 300)
{
	unsigned long long end = fw[1].base + fw[1].size - 1;
	char msg[128];

	EXPECT_EQ(fw[1].size, self->dax.size);
	EXPECT_TRUE(self->dax.bound);
	EXPECT_TRUE(region_committed(self->region));
	EXPECT_EQ(fw[1].size, read_u64(CXL_DEVS "/%s/size", self->region));
	EXPECT_FALSE(exists(CXL_DEVS "/dax_%s", self->region))
		TH_LOG("%s did not yield to HMEM", self->region);
	EXPECT_EQ(0, count_owned(OWNER_CXL));
	kmsg_rewind();
	snprintf(msg, sizeof(msg), "await CXL initial probe: [mem %#010llx-%#010llx",
		 fw[1].base, end);
	EXPECT_FALSE(kmsg_has(msg)) TH_LOG("HMEM deferred with no CXL window: \"%s\"", msg);
}

/* daxctl moves HMEM's range to System RAM, it is used, and back to device_dax. */
TEST_F_TIMEOUT(hw_cxl_late, daxctl_round_trip, 600)
{
	static const char *const back[] = { "offline-memory", "reconfigure-device --mode=devdax" };
	const char *dax = self->dax.name;
	char cmd[128], out[2048], why[256];
	size_t i;
	int rc;

	EXPECT_EQ(0, online_and_use(&self->dax, why, sizeof(why))) TH_LOG("%s", why);
	ASSERT_TRUE(iomem_nested(dax, "System RAM (kmem)"));

	for (i = 0; i < ARRAY_SIZE(back); i++) {
		snprintf(cmd, sizeof(cmd), "daxctl %s %s 2>&1", back[i], dax);
		rc = run_tool(out, sizeof(out), cmd);
		TH_LOG("%s: exit %d: %s", cmd, rc, out);
		ASSERT_EQ(0, rc);
	}
	EXPECT_TRUE(driver_is(dax, "device_dax"));
	EXPECT_FALSE(iomem_nested(dax, "System RAM (kmem)")) TH_LOG("kmem left its range");
	EXPECT_TRUE(dax_at(OWNER_HMEM, fw[1].base, &self->dax));
}

TEST_HARNESS_MAIN
