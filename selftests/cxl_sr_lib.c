// SPDX-License-Identifier: GPL-2.0
/* Helpers of the cxl_sr kselftests: see cxl_sr_lib.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#include <poll.h>
#include <linux/netlink.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cxl_sr_lib.h"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

/* Every module cxl_test and the coldplug can bring in, in unload order. */
static const char *const stack_modules[] = {
	"dax_cxl", "kmem", "device_dax", "dax_hmem", "cxl_test", "cxl_mock_mem", "cxl_mock_accel",
	"cxl_pmem", "cxl_mem", "cxl_port", "cxl_acpi", "cxl_pci", "cxl_mock", "cxl_core",
};

int sh(const char *fmt, ...)
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

/* Run a command; its exit status, and what it printed (both streams) in out. */
int run_tool(char *out, size_t len, const char *cmd)
{
	FILE *p = popen(cmd, "r");
	char rest[256];
	size_t used = 0;
	int rc;

	out[0] = '\0';
	if (!p)
		return -1;
	while (used + 1 < len && fgets(out + used, len - used, p))
		used += strlen(out + used);
	/* Read what does not fit, so that the command never blocks on a full pipe. */
	while (fgets(rest, sizeof(rest), p))
		;
	rc = pclose(p);
	return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

bool exists(const char *fmt, ...)
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
const char *read_line(char *buf, size_t len, const char *fmt, ...)
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

unsigned long long read_u64(const char *fmt, const char *dev)
{
	char buf[64];

	read_line(buf, sizeof(buf), fmt, dev);
	return strtoull(buf, NULL, 0);
}

long long now_ms(void)
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

/*
 * The modules a device alias matches, normalised to their /sys/module names;
 * resolved once per alias, since fnmatch() over every rule of modules.alias
 * is what a round would spend its time on.
 */
struct alias_match {
	char alias[256];
	int nmods;
	char mods[4][64];
};

static struct alias_match *matches;
static int nmatches;

static struct alias_match *match_alias(const char *alias)
{
	struct alias_match *m;
	int i, k;

	for (i = 0; i < nmatches; i++)
		if (!strcmp(matches[i].alias, alias))
			return &matches[i];
	m = realloc(matches, (nmatches + 1) * sizeof(*matches));
	if (!m)
		return NULL;
	matches = m;
	m = &matches[nmatches++];
	memset(m, 0, sizeof(*m));
	snprintf(m->alias, sizeof(m->alias), "%s", alias);
	for (k = 0; k < nrules && m->nmods < (int)ARRAY_SIZE(m->mods); k++) {
		char *c;

		if (fnmatch(rules[k].pattern, alias, 0))
			continue;
		snprintf(m->mods[m->nmods], sizeof(m->mods[0]), "%s", rules[k].module);
		for (c = m->mods[m->nmods]; *c; c++)
			if (*c == '-')
				*c = '_';
		m->nmods++;
	}
	return m;
}

static bool load_for_alias(const char *alias)
{
	struct alias_match *m = match_alias(alias);
	bool loaded = false;
	int k;

	for (k = 0; m && k < m->nmods; k++)
		if (!module_loaded(m->mods[k]) && !sh("modprobe -q %s", m->mods[k]))
			loaded = true;
	return loaded;
}

static bool scan_all(void)
{
	char alias[256];
	bool loaded = false;
	size_t j;
	glob_t g;

	if (glob("/sys/bus/*/devices/*/modalias", 0, NULL, &g))
		return false;
	for (j = 0; j < g.gl_pathc; j++)
		if (*read_line(alias, sizeof(alias), "%s", g.gl_pathv[j]))
			loaded |= load_for_alias(alias);
	globfree(&g);
	return loaded;
}

/*
 * After one scan of every device, as udev does: the kernel's uevents say
 * which devices were added since (walking sysfs under emulation takes
 * seconds). A socket that overflowed has lost some: scan again.
 */
static int uevent_fd = -1;

static bool uevent_open(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	int size = 16 << 20;

	uevent_fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			   NETLINK_KOBJECT_UEVENT);
	if (uevent_fd < 0)
		return false;
	setsockopt(uevent_fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
	if (bind(uevent_fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(uevent_fd);
		uevent_fd = -1;
		return false;
	}
	return true;
}

/* Load for the devices added since the last call; true if a module was loaded. */
static bool uevents_drain(bool *lost)
{
	char buf[8192];
	bool loaded = false;
	ssize_t len;

	while ((len = recv(uevent_fd, buf, sizeof(buf) - 1, 0)) != 0) {
		const char *modalias = NULL, *p;
		bool add = false;

		if (len < 0) {
			if (errno == ENOBUFS)
				*lost = true;
			else if (errno != EINTR)
				break;
			continue;
		}
		buf[len] = '\0';
		for (p = buf; p < buf + len; p += strlen(p) + 1) {
			if (!strcmp(p, "ACTION=add"))
				add = true;
			else if (!strncmp(p, "MODALIAS=", 9))
				modalias = p + 9;
		}
		if (add && modalias)
			loaded |= load_for_alias(modalias);
	}
	return loaded;
}

bool coldplug_round(void)
{
	bool lost = false, loaded;

	load_alias_rules();
	if (uevent_fd < 0) {
		uevent_open();
		return scan_all();
	}
	loaded = uevents_drain(&lost);
	if (lost)
		loaded |= scan_all();
	return loaded;
}

void coldplug(void)
{
	int i;

	for (i = 0; i < 10 && coldplug_round(); i++)
		;
}

/*
 * Poll cond() until it holds or timeout_ms pass, loading drivers for devices
 * that appear meanwhile (dax_region0 only exists once region0 commits).
 */
bool wait_for(bool (*cond)(void), int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	do {
		struct pollfd pfd = { .fd = uevent_fd, .events = POLLIN };

		if (cond())
			return true;
		coldplug_round();
		/* Look again at the next uevent (a bind, a new device), at worst in 100 ms. */
		if (uevent_fd < 0 || poll(&pfd, 1, 100) < 0)
			usleep(100 * 1000);
	} while (now_ms() < end);
	return cond();
}

bool module_loaded(const char *name)
{
	return exists("/sys/module/%s/initstate", name);
}

/* The first module of the stack still loaded, or NULL. */
const char *stack_left(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(stack_modules); i++)
		if (exists("/sys/module/%s/initstate", stack_modules[i]))
			return stack_modules[i];
	return NULL;
}

bool stack_unloaded(void)
{
	return !stack_left();
}

/*
 * delete_module(2) without waiting, as `modprobe -r` does it, but without a
 * shell and a modprobe per module: under emulation each of those costs half
 * a second, and a module that is not loaded costs nothing here.
 */
static void unload_loaded(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(stack_modules); i++)
		if (module_loaded(stack_modules[i]))
			syscall(__NR_delete_module, stack_modules[i], O_NONBLOCK);
}

void unload_stack(void)
{
	long long end;

	/* A decision cxl_test holds would hold the unload: let it go. */
	if (exists("/sys/module/cxl_test/parameters/hmem_hold"))
		write_str("0", "/sys/module/cxl_test/parameters/hmem_hold");
	/*
	 * dax_cxl may still be registering its driver, kmem still taking its
	 * memory away: retry, for a while, rather than leave a module (and its
	 * parameters) to the next test.
	 */
	end = now_ms() + UNLOAD_MS;
	do {
		unload_loaded();
		if (stack_unloaded())
			return;
		usleep(200 * 1000);
	} while (now_ms() < end);
}

/* Every dax device, with the driver stack it hangs under. */
int list_dax(struct dax_dev *out)
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
		snprintf(dd->name, sizeof(dd->name), "%.31s", de->d_name);
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

int count_owned(enum owner owner)
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
bool owns_bound(enum owner owner, int want)
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
bool dax_ranges_disjoint(void)
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

int count_glob(const char *pattern)
{
	glob_t g;
	int n;

	if (glob(pattern, 0, NULL, &g))
		return 0;
	n = g.gl_pathc;
	globfree(&g);
	return n;
}

bool region0_committed(void)
{
	char buf[16];

	return !strcmp(read_line(buf, sizeof(buf), CXL_DEVS "/region0/commit"), "1");
}

bool cxl_owns_one(void)
{
	return region0_committed() && owns_bound(OWNER_CXL, 1);
}

bool hmem_owns_one(void)
{
	return owns_bound(OWNER_HMEM, 1);
}

bool dax_cxl_driver_registered(void)
{
	return exists("/sys/bus/cxl/drivers/cxl_dax_region");
}

/*
 * /proc/iomem as a maintainer reads it: whether `child` sits directly under
 * `parent` (one level of indentation deeper, within parent's block).
 */
bool iomem_nested(const char *parent, const char *child)
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

/* modules.dep lists cxl_test for the running kernel (what `modprobe -n` reads). */
bool cxl_test_available(void)
{
	char path[PATH_MAX], line[1024];
	bool found = false;
	struct utsname u;
	FILE *f;

	if (uname(&u))
		return false;
	snprintf(path, sizeof(path), "/lib/modules/%s/modules.dep", u.release);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':'), *base;

		if (!colon)
			continue;
		*colon = '\0';
		base = strrchr(line, '/');
		found = !strncmp(base ? base + 1 : line, "cxl_test.ko", 11);
	}
	fclose(f);
	return found;
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

int write_str(const char *val, const char *fmt, ...)
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
bool region_root_decoder(const char *region, char *out, size_t len)
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

/* Create a RAM region in the window and ask for `size` bytes of HPA. */
int try_region_size(const char *decoder, unsigned long long size, char *region,
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
	read_line(buf, sizeof(buf), CXL_DEVS "/%s/interleave_ways", decoder);
	rc = write_str(buf, CXL_DEVS "/%s/interleave_ways", region);
	if (rc)
		return rc;
	read_line(buf, sizeof(buf), CXL_DEVS "/%s/interleave_granularity", decoder);
	rc = write_str(buf, CXL_DEVS "/%s/interleave_granularity", region);
	if (rc)
		return rc;
	snprintf(buf, sizeof(buf), "%llu", size);
	return write_str(buf, CXL_DEVS "/%s/size", region);
}

/* Why the last make_ram_region() failed, for the test log. */
char region_err[256];

int region_fail(int rc, const char *what, const char *name)
{
	snprintf(region_err, sizeof(region_err), "%s %s: %s", what, name, strerror(-rc));
	return rc;
}

/*
 * Endpoint decoder X.0 of each memdev firmware left alone: no endpoint
 * decoder of its port holds DPA. (Endpoint decoders allocate in id order.)
 */
int free_endpoint_decoders(char names[][32], int max)
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
int make_ram_region(const char *root, unsigned long long size, char *region,
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

bool region_committed(const char *region)
{
	char buf[16];

	return !strcmp(read_line(buf, sizeof(buf), CXL_DEVS "/%s/commit", region), "1");
}

bool cxl_owns_two(void)
{
	return owns_bound(OWNER_CXL, 2);
}

/* Kernel log lines written since kmsg_mark(). */
static int kmsg_fd = -1;
static char *kmsg_text;
static size_t kmsg_len;

static void kmsg_seek(int whence)
{
	if (kmsg_fd < 0)
		kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg_fd >= 0)
		lseek(kmsg_fd, 0, whence);
	kmsg_len = 0;
}

void kmsg_mark(void)
{
	kmsg_seek(SEEK_END);
}

/* From the oldest record the kernel still holds: what boot said, too. */
void kmsg_rewind(void)
{
	kmsg_seek(SEEK_SET);
}

bool kmsg_has(const char *needle)
{
	char rec[8192];
	ssize_t n;

	while (kmsg_fd >= 0) {
		char *msg, *grown;

		n = read(kmsg_fd, rec, sizeof(rec) - 1);
		/* EPIPE: records were overwritten; the read goes on at the oldest. */
		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			break;

		rec[n] = '\0';
		msg = strchr(rec, ';');
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

/* How often `needle` occurs in the kernel log since kmsg_mark(). */
int kmsg_count(const char *needle)
{
	const char *at;
	int n = 0;

	kmsg_has(needle);
	for (at = kmsg_text; kmsg_len && (at = strstr(at, needle)); at += strlen(needle))
		n++;
	return n;
}

/*
 * The /proc/iomem entries called `name`: how many, and the ranges of the
 * first `max` of them.
 */
static int iomem_entries(const char *name, unsigned long long (*ranges)[2], int max)
{
	unsigned long long s, e;
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/iomem", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *sep;

		line[strcspn(line, "\n")] = '\0';
		sep = strstr(line, " : ");
		if (!sep || strcmp(sep + 3, name) || sscanf(line, " %llx-%llx", &s, &e) != 2)
			continue;
		if (n < max) {
			ranges[n][0] = s;
			ranges[n][1] = e;
		}
		n++;
	}
	fclose(f);
	return n;
}

/* How many /proc/iomem entries are called `name`. */
int iomem_count(const char *name)
{
	return iomem_entries(name, NULL, 0);
}

/* Whether /proc/iomem has an entry `name` spanning exactly [start, end]. */
bool iomem_has(const char *name, unsigned long long start, unsigned long long end)
{
	unsigned long long r[16][2];
	int i, n = iomem_entries(name, r, 16);

	for (i = 0; i < n && i < 16; i++)
		if (r[i][0] == start && r[i][1] == end)
			return true;
	return false;
}

bool dax_region_conflict_logged(void)
{
	return kmsg_has("dax_region resource conflict");
}

bool hmem_region_present(void)
{
	return count_glob(HMEM_TEST_DEV "/hmem.*/dax_region") == 1;
}

/* The size of HMEM's dax region: the span it holds in the arbiter. */
unsigned long long hmem_region_size(void)
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
bool iomem_find(const char *name, unsigned long long *start, unsigned long long *end)
{
	unsigned long long r[1][2];

	if (!iomem_entries(name, r, 1))
		return false;
	*start = r[0][0];
	*end = r[0][1];
	return true;
}

bool soft_reserved_published(void)
{
	unsigned long long start, end;

	return iomem_find("Soft Reserved", &start, &end);
}

bool cxl_owns_sr(void)
{
	return owns_bound(OWNER_CXL, 1);
}

/* Disable HMEM's device (hmem.N under the test's hmem_platform). */
int hmem_let_go(void)
{
	char hmem[PATH_MAX];
	glob_t g;

	if (glob(HMEM_TEST_DEV "/hmem.*", 0, NULL, &g))
		return -ENOENT;
	snprintf(hmem, sizeof(hmem), "%s", strrchr(g.gl_pathv[0], '/') + 1);
	globfree(&g);
	return write_str(hmem, "/sys/bus/platform/drivers/hmem/unbind");
}

/*
 * The device of `pattern` (a glob under CXL_DEVS) whose HPA range, its
 * `start_attr` ("start", "resource") and its size, holds `addr`: into out.
 */
bool cxl_dev_holding(const char *pattern, const char *start_attr, unsigned long long addr,
		     char *out, size_t len)
{
	char path[PATH_MAX];
	glob_t g;
	size_t i;
	bool found = false;

	snprintf(path, sizeof(path), CXL_DEVS "/%s", pattern);
	if (glob(path, 0, NULL, &g))
		return false;
	for (i = 0; i < g.gl_pathc && !found; i++) {
		const char *name = strrchr(g.gl_pathv[i], '/') + 1;
		unsigned long long start, size;

		snprintf(path, sizeof(path), CXL_DEVS "/%%s/%s", start_attr);
		start = read_u64(path, name);
		size = read_u64(CXL_DEVS "/%s/size", name);
		if (addr >= start && addr < start + size) {
			snprintf(out, len, "%s", name);
			found = true;
		}
	}
	globfree(&g);
	return found;
}
