#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# modprobe for ndctl's tests in the test VM (first on their PATH): the real
# one, then, after a load, `udevadm settle` (vm-udevadm.sh): where udev
# would load the drivers of the devices the module added, before the test
# looks at them.
/sbin/modprobe "$@" || exit
case " $* " in
*" -r "* | *" --remove "*) exit 0 ;;
esac
exec udevadm settle
