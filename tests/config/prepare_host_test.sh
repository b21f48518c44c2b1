#!/usr/bin/env bash
# deploy/prepare-host against a fake sysfs/proc tree: --help, --dry-run plan,
# idempotence (nothing to do when already prepared), and refusals. It never
# touches the real machine: everything points at a temporary directory and
# --dry-run is used for every run that would change something.
set -euo pipefail
script=${1:?usage: prepare_host_test.sh PATH/TO/prepare-host}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() {  # check NAME OUTPUT EXPECTED-SUBSTRING
  if [[ "$2" != *"$3"* ]]; then
    echo "FAIL $1: expected '$3' in:"; echo "$2"; fails=$((fails + 1))
  else
    echo "pass $1"
  fi
}
check_not() {
  if [[ "$2" == *"$3"* ]]; then
    echo "FAIL $1: did not expect '$3' in:"; echo "$2"; fails=$((fails + 1))
  else
    echo "pass $1"
  fi
}

S=$T/sys P=$T/proc
mkdir -p "$S/kernel/mm/hugepages/hugepages-2048kB" "$S/bus/pci/drivers/ixgbe" "$S/bus/pci/drivers/vfio-pci" \
         "$S/bus/pci/devices/0000:03:00.0/net/eth1" "$S/bus/pci/devices/0000:03:00.1" "$P" "$T/hp"
echo 0 > "$S/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
ln -s ../../../../bus/pci/drivers/ixgbe "$S/bus/pci/devices/0000:03:00.0/driver"
ln -s ../../../../bus/pci/drivers/vfio-pci "$S/bus/pci/devices/0000:03:00.1/driver"
echo down > "$S/bus/pci/devices/0000:03:00.0/net/eth1/operstate"
: > "$P/mounts"
echo "BOOT_IMAGE=/vmlinuz root=/dev/sda1 isolcpus=2-5" > "$P/cmdline"
export SIPLB_SYSFS_ROOT=$S SIPLB_PROC_ROOT=$P

out=$("$script" --help)
check help "$out" "usage: prepare-host"
check help-dry-run "$out" "--dry-run"

rc=0; out=$("$script" --bogus 2>&1) || rc=$?
check bad-option "$out" "unknown option '--bogus'"
[[ $rc == 2 ]] || { echo "FAIL bad-option rc=$rc"; fails=$((fails + 1)); }

rc=0; out=$("$script" --dry-run --bind 03:00.0 2>&1) || rc=$?
check bad-pci "$out" "is not a PCI address"
[[ $rc != 0 ]] || { echo "FAIL bad-pci accepted"; fails=$((fails + 1)); }

out=$("$script" --dry-run --hugepages 512 --mount "$T/hp" --bind 0000:03:00.0 --bind 0000:03:00.1 --isolate 2-5)
check dry-banner "$out" "dry run: nothing will be changed"
check plan-hugepages "$out" "would: echo 512 > $S/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
check plan-mount "$out" "would: mount -t hugetlbfs -o pagesize=2M nodev $T/hp"
check plan-override "$out" "would: echo vfio-pci > $S/bus/pci/devices/0000:03:00.0/driver_override"
check plan-unbind "$out" "would: echo 0000:03:00.0 > $S/bus/pci/devices/0000:03:00.0/driver/unbind"
check plan-probe "$out" "would: echo 0000:03:00.0 > $S/bus/pci/drivers_probe"
check already-bound "$out" "ok:    0000:03:00.1 bound to vfio-pci"
check driver-loaded "$out" "ok:    driver vfio-pci loaded"
check isolate-advice "$out" "kernel command line lacks: nohz_full=2-5 rcu_nocbs=2-5"
check_not isolate-has-isolcpus "$out" "lacks: isolcpus"
# The dry run changed nothing.
[[ $(<"$S/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages") == 0 ]] || { echo "FAIL dry-run wrote nr_hugepages"; fails=$((fails + 1)); }
[[ ! -e "$S/bus/pci/devices/0000:03:00.0/driver_override" ]] || { echo "FAIL dry-run wrote driver_override"; fails=$((fails + 1)); }

# Already prepared: only "ok" lines, nothing to do.
echo 1024 > "$S/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
echo "nodev $T/hp hugetlbfs rw,relatime,pagesize=2M 0 0" > "$P/mounts"
rm "$S/bus/pci/devices/0000:03:00.0/driver"
ln -s ../../../../bus/pci/drivers/vfio-pci "$S/bus/pci/devices/0000:03:00.0/driver"
echo "BOOT_IMAGE=/vmlinuz isolcpus=2-5 nohz_full=2-5 rcu_nocbs=2-5 quiet" > "$P/cmdline"
out=$("$script" --dry-run --hugepages 512 --mount "$T/hp" --bind 0000:03:00.0 --isolate 2-5)
check_not idempotent "$out" "would:"
check idem-hugepages "$out" "ok:    1024 2M hugepages reserved (wanted 512)"
check idem-mount "$out" "ok:    hugetlbfs mounted on $T/hp"
check idem-isolate "$out" "ok:    kernel command line isolates CPUs 2-5"

# A NIC whose interface is up is refused without --force.
rm "$S/bus/pci/devices/0000:03:00.0/driver"
ln -s ../../../../bus/pci/drivers/ixgbe "$S/bus/pci/devices/0000:03:00.0/driver"
echo up > "$S/bus/pci/devices/0000:03:00.0/net/eth1/operstate"
rc=0; out=$("$script" --dry-run --bind 0000:03:00.0 2>&1) || rc=$?
check refuse-up "$out" "is interface eth1, which is up"
[[ $rc != 0 ]] || { echo "FAIL refuse-up rc=0"; fails=$((fails + 1)); }
out=$("$script" --dry-run --force --bind 0000:03:00.0)
check force "$out" "would: echo vfio-pci > $S/bus/pci/devices/0000:03:00.0/driver_override"

rc=0; out=$("$script" --dry-run --bind 0000:09:00.0 2>&1) || rc=$?
check missing-dev "$out" "no PCI device 0000:09:00.0"

echo "$fails failures"
((fails == 0))
