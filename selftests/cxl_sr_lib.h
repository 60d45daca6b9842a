/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the cxl_sr kselftests share: running commands, reading sysfs, loading
 * and unloading the cxl_test stack (with a coldplug loop in place of udev),
 * listing dax devices by owner, making CXL regions through sysfs, reading
 * the kernel log and /proc/iomem.
 */
#ifndef CXL_SR_LIB_H
#define CXL_SR_LIB_H

#include <stdbool.h>
#include <stddef.h>

#define SETTLE_MS	90000
#define DRIVER_BOUND_MS	10000
#define UNLOAD_MS	30000
#define CXL_DEVS	"/sys/bus/cxl/devices"
#define DAX_DEVS	"/sys/bus/dax/devices"
#define HMEM_TEST_DEV	"/sys/bus/platform/devices/hmem_platform.1"
#define MAX_DAX	16
enum owner { OWNER_NONE, OWNER_CXL, OWNER_HMEM };
struct dax_dev {
	char name[32];
	enum owner owner;
	unsigned long long start, size;
	bool bound;	/* a driver (device_dax, kmem) holds it: its range is claimed */
};

extern char region_err[256];

/*
 * In a case XFAIL_ADD() expects to fail on a known kernel bug, before the
 * check that bug fails: name it as the reason, if every check so far held
 * (a failure of any other check then has no reason, and is not the bug).
 */
#define XFAIL_REASON(bug)								\
	do {									\
		if (_metadata->exit_code == KSFT_PASS)				\
			snprintf(_metadata->results->reason,			\
				 sizeof(_metadata->results->reason),		\
				 "known bug: %s", bug);				\
	} while (0)

int sh(const char *fmt, ...);
int run_tool(char *out, size_t len, const char *cmd);
bool exists(const char *fmt, ...);
const char *read_line(char *buf, size_t len, const char *fmt, ...);
unsigned long long read_u64(const char *fmt, const char *dev);
long long now_ms(void);
bool coldplug_round(void);
bool wait_for(bool (*cond)(void), int timeout_ms);
void coldplug(void);
bool module_loaded(const char *name);
const char *stack_left(void);
bool stack_unloaded(void);
void unload_stack(void);
int list_dax(struct dax_dev *out);
int count_owned(enum owner owner);
bool owns_bound(enum owner owner, int want);
bool dax_ranges_disjoint(void);
int count_glob(const char *pattern);
bool region0_committed(void);
bool cxl_owns_one(void);
bool hmem_owns_one(void);
bool dax_cxl_driver_registered(void);
bool iomem_nested(const char *parent, const char *child);
bool cxl_test_available(void);
int write_str(const char *val, const char *fmt, ...);
bool region_root_decoder(const char *region, char *out, size_t len);
int try_region_size(const char *decoder, unsigned long long size, char *region, size_t len);
int region_fail(int rc, const char *what, const char *name);
int free_endpoint_decoders(char names[][32], int max);
int make_ram_region(const char *root, unsigned long long size, char *region, size_t len);
bool region_committed(const char *region);
bool cxl_dev_holding(const char *pattern, const char *start_attr, unsigned long long addr,
		     char *out, size_t len);
bool cxl_owns_two(void);
void kmsg_mark(void);
void kmsg_rewind(void);
bool kmsg_has(const char *needle);
int kmsg_count(const char *needle);
int iomem_count(const char *name);
bool iomem_has(const char *name, unsigned long long start, unsigned long long end);
bool dax_region_conflict_logged(void);
bool hmem_region_present(void);
unsigned long long hmem_region_size(void);
bool iomem_find(const char *name, unsigned long long *start, unsigned long long *end);
bool soft_reserved_published(void);
bool cxl_owns_sr(void);
int hmem_let_go(void);

#endif
