#!/usr/bin/env bash
# `make run`'s broker: makes sure an MQTT broker answers on 127.0.0.1:1883
# (what the embedded defaults point nodus at), starting a loopback-only
# mosquitto if nothing does. It stays up after nodus stops, so telemetry
# watchers and the next `make run` keep their broker; stop it with
#   kill "$(cat /run/nodus-dev-mosquitto.pid)"
set -euo pipefail
port=1883
pidfile=/run/nodus-dev-mosquitto.pid
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if answers; then
  echo "broker: 127.0.0.1:$port already answers; nodus uses it"
  exit 0
fi
conf=$(mktemp /tmp/nodus-dev-mosquitto.XXXXXX.conf)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$conf"
chmod 0644 "$conf"
# Its own session, so it outlives `make run` (and its Ctrl-C); the pid file
# is ours (mosquitto writes its own only after dropping to its user).
setsid mosquitto -c "$conf" </dev/null >/dev/null 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 50); do
  answers && break
  sleep 0.1
done
answers || { echo "broker: mosquitto did not come up on 127.0.0.1:$port" >&2; exit 1; }
echo "broker: started mosquitto on 127.0.0.1:$port (pid $(cat "$pidfile" 2>/dev/null || echo ?); stop: kill \$(cat $pidfile))"
