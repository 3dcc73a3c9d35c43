# Used only by hil-tests/selftest.sh: proves a failing scenario fails the run
# and that the harness shows the guest's output.
echo "this line must appear in the harness output"
fail "deliberate failure"
