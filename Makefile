# SPDX-License-Identifier: GPL-2.0
#
# cxl-sr-suite: tests for Soft Reserved ownership (dax_hmem vs dax_cxl).
#
#   make              set up, fetch Linux 7.3, overlay, build, run the KUnit suites
#   make check        the above plus the project's own tests (see docs/checks.md)
#   make bench        time every stage of a cold and a warm run
#   make prefixes     build the VM kernel at every prefix of the series (bisectability)
#   make repeat N=10  the main job N times in a row; a verdict that changes is a flake
#   make coverage     both layers on gcov kernels; lcov report in build/results/coverage
#   make series       export the overlay as a git format-patch series (build/series)
#   make ci           for CI bots: KSRC, RESULTS_DIR, BUDGET (s); exit 0 only if all passed
#
# KSRC=/path/to/linux  test a maintainer's tree instead (it is only read).
# BUILD_DIR, JOBS, KUNIT_TIMEOUT, CXL_SR_CACHE: see README.

RUNNER := cd ci && python3 -m cxlsr

.PHONY: all setup kunit check ci series coverage repeat tally bench prepare prefixes suites clean distclean help

all: setup kunit

setup:
	@ci/setup.sh

kunit:
	@$(RUNNER) run

check: setup
	@$(RUNNER) check

repeat: setup
	@$(RUNNER) repeat $(or $(N),10)

coverage: setup
	@$(RUNNER) coverage

series: setup
	@$(RUNNER) series

ci: setup
	@$(RUNNER) ci

tally:
	@$(RUNNER) tally

bench: setup
	@$(RUNNER) bench

prepare: setup
	@$(RUNNER) prepare

prefixes: setup
	@$(RUNNER) prefixes

suites:
	@$(RUNNER) suites

clean:
	rm -rf build/kunit build/results build/bench

distclean:
	rm -rf build

help:
	@sed -n '3,15p' Makefile
