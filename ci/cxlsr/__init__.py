# SPDX-License-Identifier: GPL-2.0
"""cxl-sr-suite runner: pristine Linux 7.3 -> overlay -> kernel -> tests -> results."""
