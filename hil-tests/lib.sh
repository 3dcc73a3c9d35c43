# Helpers for board scenarios (busybox sh). A scenario is one file in
# hil-tests/scenarios: it passes by exiting 0 and fails with `fail "why"`.

NODUS_SOCKET=/run/nodus/control.sock
NODUS_LOG=/tmp/nodus.log

fail() {
  echo "FAIL: $*"
  [ -f "$NODUS_LOG" ] && { echo "--- nodus log ---"; cat "$NODUS_LOG"; }
  # A failed scenario leaves no nodus behind for the next one to trip on.
  if [ -n "${NODUS_PID:-}" ] && kill -0 "$NODUS_PID" 2>/dev/null; then
    kill -TERM "$NODUS_PID"
    wait "$NODUS_PID" 2>/dev/null
  fi
  exit 1
}

# expect_line PATTERN TEXT WHAT: TEXT has a line matching the extended regex.
expect_line() {
  printf '%s\n' "$2" | grep -Eq "$1" || fail "$3: no line matching /$1/ in:
$2"
}

# Waits up to $2 seconds until `nodus status` has a line matching the
# extended regex $1; returns 1 if it never comes (an expect_line after it
# then shows what status said instead).
wait_status() {
  tries=$(($2 * 10))
  until nodus status | grep -Eq "$1"; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || return 1
    sleep 0.1
  done
}

# wait_file PATH SECONDS WHAT: waits for PATH to exist (a helper process
# saying it is ready), failing with WHAT after SECONDS.
wait_file() {
  tries=$(($2 * 10))
  until [ -f "$1" ]; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || fail "$3 within $2 s"
    sleep 0.1
  done
}

# Starts `nodus run` in the background and waits until it answers status.
nodus_start() {
  nodus run "$@" >"$NODUS_LOG" 2>&1 &
  NODUS_PID=$!
  i=0
  while ! nodus status >/dev/null 2>&1; do
    kill -0 "$NODUS_PID" 2>/dev/null || fail "nodus exited during start"
    i=$((i + 1))
    [ "$i" -lt 600 ] || fail "nodus did not answer status within 60 s"
    sleep 0.1
  done
}

# Stops nodus with SIGTERM and checks it exits 0 within the grace period.
nodus_stop() {
  kill -TERM "$NODUS_PID"
  i=0
  while kill -0 "$NODUS_PID" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -lt 100 ] || fail "nodus still running 10 s after SIGTERM"
    sleep 0.1
  done
  wait "$NODUS_PID"
  rc=$?
  [ "$rc" -eq 0 ] || fail "nodus exited $rc after SIGTERM"
}

# GET a file from the host harness (guest-to-host through user networking).
host_get() {
  wget -q -O - "http://10.0.2.2:$HIL_HOSTPORT/$1"
}

# Asks the host harness to fetch http://127.0.0.1:<forwarded port>/ (which
# reaches guest port 8080 through hostfwd) with curl, and prints what it got.
host_fetch_guest() {
  # Straight to the console: stdout may be captured by the caller.
  echo "@@HIL {\"host_check\":\"$1\"}" >/dev/console
  i=0
  while ! host_get "check-$1" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -lt 300 ] || fail "host did not report check $1 within 30 s"
    sleep 0.1
  done
}

# cpu_of PID: the CPU the task last ran on (/proc/PID/stat field 39).
cpu_of() {
  cut -d' ' -f39 "/proc/$1/stat"
}

# start_hogs N: N busy-looping shell scripts named "hog"; their pids in HOGS.
start_hogs() {
  printf '#!/bin/sh\nwhile :; do :; done\n' >/tmp/hog
  chmod +x /tmp/hog
  HOGS=""
  for _ in $(seq 1 "$1"); do
    /tmp/hog &
    HOGS="$HOGS $!"
  done
}
