#!/usr/bin/env bash
# The Linux kernel's iommufd selftests, built unmodified against the headers
# softiommu generates and run under the interposer: softiommu's conformance check.
#
#   tests/kernel-selftest/run.sh                 build, run everything, compare
#   tests/kernel-selftest/run.sh -f iommufd_ioas only this fixture (any harness
#                                                filter: -f/-F -v/-V -t/-T -r)
#
# What it does:
#   1. installs what a fresh Debian machine lacks (linux-source-6.12 for the
#      selftest sources, linux-libc-dev, libcap-dev if the sources use it, gcc);
#   2. extracts only tools/testing/selftests/{iommu/,kselftest*} from
#      /usr/src/linux-source-6.12.tar.xz into target/kernel-selftest/src
#      (once; the kernel's own uAPI headers are not extracted: its selftests are
#      newer than them);
#   3. writes <linux/iommufd.h> and iommufd_test.h with `softiommu headers`, and
#      puts iommufd_test.h where the selftest's relative include looks
#      (drivers/iommu/iommufd/ under the extracted tree);
#   4. builds `iommufd` and `iommufd_fail_nth` with the selftest Makefile's flags;
#   5. runs each under `softiommu run --` with a timeout, parses the TAP output,
#      prints pass/fail/skip per fixture and in total, and compares the failures
#      with tests/kernel-selftest/expected-failures.txt.
#
# Exit status: 0 when every failing test is on the expected-failures list; 1 when
# a test not on the list fails, or a binary crashes, stops early or times out;
# 2 when the job cannot run (missing tools, no `softiommu headers`, build error).
# Listed tests that now pass are printed, so that the list can shrink.
#
# Some tests need hugetlb pages (MAP_HUGETLB). When run as root on a machine
# whose /proc/sys/vm/nr_hugepages is writable, the job reserves
# $SELFTEST_HUGEPAGES (default 80) 2 MiB pages for the run and gives them back
# afterwards; SELFTEST_HUGEPAGES=0 leaves the setting alone.
#
# expected-failures.txt: one test per line, `FIXTURE[.VARIANT].TEST  reason`;
# `#` starts a comment. A reason that begins with `[no-hugetlb]` or
# `[no-cap-sys-resource]` applies only when the run has no hugetlb pages, or
# lacks CAP_SYS_RESOURCE: on a machine that has them the test must pass.
#
# No kernel source is kept in the repository: it is extracted under target/ at
# test time. Environment: KERNEL_SOURCE_TARBALL (default
# /usr/src/linux-source-6.12.tar.xz), SELFTEST_TIMEOUT (seconds for the
# `iommufd` binary, default 420), SELFTEST_HUGEPAGES, SOFTIOMMU_NO_BUILD=1 (do
# not run cargo build), CARGO_TARGET_DIR.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$TARGET/kernel-selftest
SRC=$WORK/src
SELFTESTS=$SRC/tools/testing/selftests
INCLUDE=$WORK/include
BUILD=$WORK/build
LOGS=$WORK/logs
TARBALL=${KERNEL_SOURCE_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
TIMEOUT=${SELFTEST_TIMEOUT:-420}
EXPECTED=$HERE/expected-failures.txt
SOFTIOMMU=$TARGET/debug/softiommu
HARNESS_ARGS=("$@")

say() { printf '==> %s\n' "$*"; }
die() { printf 'kernel-selftest: %s\n' "$*" >&2; exit 2; }

# --- 1. what a fresh machine lacks -------------------------------------------
apt_updated=
need_pkg() { # need_pkg PACKAGE FILE-IT-PROVIDES
  [ -e "$2" ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "$2 is missing: install the Debian package $1"
  fi
  if [ -z "$apt_updated" ]; then
    apt-get update -qq >/dev/null
    apt_updated=1
  fi
  say "installing $1"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
  [ -e "$2" ] || die "installing $1 did not provide $2"
}
command -v cc >/dev/null || need_pkg gcc /usr/bin/gcc
need_pkg linux-libc-dev /usr/include/linux/vfio.h
if [ -z "${KERNEL_SOURCE_TARBALL:-}" ]; then
  need_pkg linux-source-6.12 "$TARBALL"
fi
[ -f "$TARBALL" ] || die "no kernel source tarball at $TARBALL"

# --- 2. extract the selftest sources (cached) --------------------------------
stamp="$TARBALL $(stat -c '%s %Y' "$TARBALL")"
if [ ! -f "$SRC/.extracted" ] || [ "$(cat "$SRC/.extracted")" != "$stamp" ]; then
  say "extracting the iommu selftests from $TARBALL"
  rm -rf "$SRC"
  mkdir -p "$SRC"
  # The first member names the tarball's top directory.
  top=$( (tar -tJf "$TARBALL" 2>/dev/null || true) | head -n 1 | cut -d/ -f1)
  [ -n "$top" ] || die "cannot list $TARBALL"
  tar -xJf "$TARBALL" -C "$SRC" --strip-components=1 --wildcards \
    "$top/tools/testing/selftests/iommu/*" \
    "$top/tools/testing/selftests/kselftest*"
  [ -f "$SELFTESTS/iommu/iommufd.c" ] || die "no iommu selftests in $TARBALL"
  echo "$stamp" >"$SRC/.extracted"
fi
IOMMU=$SELFTESTS/iommu
if grep -q 'sys/capability.h' "$IOMMU"/*.c "$IOMMU"/*.h; then
  need_pkg libcap-dev /usr/include/sys/capability.h
  LIBS=(-lcap)
else
  LIBS=()
fi

# --- 3. softiommu and its headers --------------------------------------------
if [ "${SOFTIOMMU_NO_BUILD:-}" != 1 ]; then
  say "cargo build --workspace"
  (cd "$ROOT" && cargo build --workspace --quiet) || die "cargo build failed"
fi
[ -x "$SOFTIOMMU" ] || die "no $SOFTIOMMU: run cargo build --workspace"
rm -rf "$INCLUDE"
if ! "$SOFTIOMMU" headers "$INCLUDE" >/dev/null; then
  die "\`softiommu headers $INCLUDE\` failed: this job needs the C header generator (crates/uapi cheader) and the \`softiommu headers DIR\` subcommand"
fi
[ -f "$INCLUDE/linux/iommufd.h" ] && [ -f "$INCLUDE/iommufd_test.h" ] ||
  die "softiommu headers did not write linux/iommufd.h and iommufd_test.h into $INCLUDE"
# The selftest includes "../../../../drivers/iommu/iommufd/iommufd_test.h"
# relative to tools/testing/selftests/iommu/.
mkdir -p "$SRC/drivers/iommu/iommufd"
cp "$INCLUDE/iommufd_test.h" "$SRC/drivers/iommu/iommufd/iommufd_test.h"

# --- 4. build ----------------------------------------------------------------
mkdir -p "$BUILD" "$LOGS"
# The flags of tools/testing/selftests/iommu/Makefile and lib.mk, with our
# headers in place of the kernel's usr/include (-I comes before system dirs).
CFLAGS=(-Wall -O2 -Wno-unused-function -D_GNU_SOURCE= -I "$INCLUDE")
for prog in iommufd iommufd_fail_nth; do
  say "building $prog"
  if ! cc "${CFLAGS[@]}" "$IOMMU/$prog.c" -o "$BUILD/$prog" "${LIBS[@]}" \
      2>"$LOGS/$prog.build.log"; then
    cat "$LOGS/$prog.build.log" >&2
    die "building $prog against the generated headers failed"
  fi
done

# --- 5. run and compare ------------------------------------------------------
# Hugetlb pages for the MAP_HUGETLB tests, given back on exit.
NR_HUGEPAGES=/proc/sys/vm/nr_hugepages
want_huge=${SELFTEST_HUGEPAGES:-80}
if [ "$want_huge" -gt 0 ] && [ "$(id -u)" = 0 ] && [ -w "$NR_HUGEPAGES" ]; then
  old_huge=$(cat "$NR_HUGEPAGES")
  if [ "$old_huge" -lt "$want_huge" ] && (echo "$want_huge" >"$NR_HUGEPAGES") 2>/dev/null; then
    trap 'echo "$old_huge" >"$NR_HUGEPAGES" 2>/dev/null || true' EXIT
    say "reserved hugetlb pages for the run (vm.nr_hugepages $old_huge -> $(cat "$NR_HUGEPAGES"))"
  fi
fi
# Which conditional entries of the expected-failures list apply to this run.
conditions=
free_huge=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
[ "${free_huge:-0}" -gt 0 ] || conditions="$conditions no-hugetlb"
cap_eff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
(( (16#${cap_eff:-0} >> 24) & 1 )) || conditions="$conditions no-cap-sys-resource"
say "conditions of this run:${conditions:- none}"

# run_one NAME SECONDS ARGS...: runs under the interposer, TAP into logs/NAME.tap.
declare -A status_of
run_one() {
  local name=$1 secs=$2 rc=0 start
  shift 2
  say "running $name under softiommu run (timeout ${secs}s)"
  start=$(date +%s)
  (cd "$BUILD" && timeout -k 10 "$secs" "$SOFTIOMMU" run -- "./$name" "$@") \
    >"$LOGS/$name.tap" 2>&1 || rc=$?
  echo "    exit status $rc after $(( $(date +%s) - start ))s; log: $LOGS/$name.tap"
  status_of[$name]=$rc
}
run_one iommufd "$TIMEOUT" "${HARNESS_ARGS[@]}"
# Without debugfs fault injection every fail_nth test SKIPs.
run_one iommufd_fail_nth 120 "${HARNESS_ARGS[@]}"

# Parses the TAP of both binaries and the expected-failures list; prints the
# report; exits 1 on an unexpected failure or an incomplete run.
set +e
awk -v expected="$EXPECTED" -v filtered="${#HARNESS_ARGS[@]}" -v conditions="$conditions" \
    -v st_iommufd="${status_of[iommufd]}" \
    -v st_fail_nth="${status_of[iommufd_fail_nth]}" '
function fixture(name,   i) { i = index(name, "."); return i ? substr(name, 1, i - 1) : name }
BEGIN {
  nc = split(conditions, c, " ")
  for (i = 1; i <= nc; i++) holds[c[i]] = 1
  while ((getline line < expected) > 0) {
    sub(/^[ \t]+/, "", line)
    if (line == "" || substr(line, 1, 1) == "#") continue
    split(line, f, /[ \t]+/)
    reason = line; sub(/^[^ \t]+[ \t]*/, "", reason)
    if (reason == "") { printf "expected-failures.txt: no reason given for %s\n", f[1]; badlist = 1 }
    # "[condition] reason": the entry applies only when the condition holds.
    if (substr(reason, 1, 1) == "[") {
      cond = substr(reason, 2, index(reason, "]") - 2)
      if (!(cond in holds)) { inactive[f[1]] = 1; continue }
    }
    listed[f[1]] = reason; nlisted++
  }
}
FNR == 1 { bin = FILENAME; sub(/.*\//, "", bin); sub(/\.tap$/, "", bin) }
/^1\.\.[0-9]+$/ { plan[bin] = substr($0, 4) + 0 }
/^(not )?ok [0-9]+ / {
  notok = ($1 == "not")
  name = notok ? $4 : $3
  seen[bin]++
  fx = fixture(name)
  if (!(fx in order)) { order[fx] = ++nfx; fxname[nfx] = fx }
  if (!notok && $0 ~ / # SKIP/) { skip[fx]++; tskip++; result[name] = "skip" }
  else if (!notok) { pass[fx]++; tpass++; result[name] = "pass" }
  else { fail[fx]++; tfail++; result[name] = "fail" }
}
END {
  printf "\n%-34s %6s %6s %6s\n", "fixture", "pass", "fail", "skip"
  for (i = 1; i <= nfx; i++) {
    fx = fxname[i]
    printf "%-34s %6d %6d %6d\n", fx, pass[fx], fail[fx], skip[fx]
  }
  printf "%-34s %6d %6d %6d   (%d tests)\n", "total", tpass, tfail, tskip, tpass + tfail + tskip
  bad = 0
  split("iommufd iommufd_fail_nth", bins, " ")
  for (b = 1; b <= 2; b++) {
    x = bins[b]; st = (x == "iommufd") ? st_iommufd : st_fail_nth
    if (st == 124 || st == 137) { printf "\nFAIL: %s timed out\n", x; bad = 1 }
    else if (!(x in plan)) { printf "\nFAIL: %s printed no TAP plan (exit status %s)\n", x, st; bad = 1 }
    else if (seen[x] < plan[x]) {
      printf "\nFAIL: %s stopped after %d of %d tests (exit status %s)\n", x, seen[x], plan[x], st; bad = 1
    } else if (st != 0 && st != 1 && st != 4) {
      # 1: some test failed (judged per test above); 4: all skipped.
      printf "\nFAIL: %s exited with status %s\n", x, st; bad = 1
    }
  }
  n = 0
  for (name in result) if (result[name] == "fail" && !(name in listed)) {
    if (!n++) { print "\nUnexpected failures (not in expected-failures.txt):"; fflush() }
    print "  " name | "sort"; bad = 1
  }
  close("sort")
  n = 0
  for (name in result) if (result[name] == "fail" && (name in listed)) n++
  printf "\nExpected failures: %d of %d listed tests failed\n", n, nlisted
  n = 0
  for (name in listed) if (result[name] == "pass") {
    if (!n++) { print "\nListed tests that now pass (remove them from expected-failures.txt):"; fflush() }
    print "  " name | "sort"
  }
  close("sort")
  n = 0
  for (name in listed) if (result[name] == "skip") {
    if (!n++) { print "\nListed tests that were skipped:"; fflush() }
    print "  " name | "sort"
  }
  close("sort")
  if (filtered == 0) {
    n = 0
    for (name in listed) if (!(name in result)) {
      if (!n++) { print "\nListed tests that did not run (stale entries?):"; fflush() }
      print "  " name | "sort"
    }
    close("sort")
  }
  if (badlist) bad = 1
  print (bad ? "\nkernel selftest: FAILED" : "\nkernel selftest: OK")
  exit bad
}' "$LOGS/iommufd.tap" "$LOGS/iommufd_fail_nth.tap" | tee "$LOGS/summary.txt"
rc=${PIPESTATUS[0]}
set -e

# For each unexpected failure, the harness's own messages.
if [ "$rc" != 0 ]; then
  sed -n 's/^  \([A-Za-z0-9_.]*\)$/\1/p' "$LOGS/summary.txt" | while read -r t; do
    grep -q "^$t[[:space:]]" "$EXPECTED" 2>/dev/null && continue
    printf '\n--- %s\n' "$t"
    awk -v t="$t" '$0 ~ "RUN +" t " \\.\\.\\.$" {on = 1} on {print} on && $0 ~ "ok [0-9]+ " t "( |$)" {exit}' \
      "$LOGS/iommufd.tap" "$LOGS/iommufd_fail_nth.tap" | head -n 40
  done
fi
exit "$rc"
