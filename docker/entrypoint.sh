#!/bin/bash
# PID 1 of the image: starts Asterisk, waits for ARI, then runs the app (`pbx-app run`: the call
# engine and the web page). If either ends, the other is stopped and the container exits
# non-zero, so a restart policy (docker run --restart) brings both back together.
# The ARI password: PBX_ARI_PASSWORD, or the file PBX_ARI_PASSWORD_FILE (a Docker secret), or,
# with neither, a random one: Asterisk and the app are the only users of it in here.
set -euo pipefail
if [[ -n ${PBX_ARI_PASSWORD_FILE:-} ]]; then
    PBX_ARI_PASSWORD=$(<"$PBX_ARI_PASSWORD_FILE")
elif [[ -z ${PBX_ARI_PASSWORD:-} ]]; then
    PBX_ARI_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
fi
umask 077
printf '[%s]\ntype = user\nread_only = no\npassword = %s\n' "$PBX_ARI_USER" "$PBX_ARI_PASSWORD" >/etc/asterisk/ari_users.conf
umask 022
mkdir -p /var/lib/pbx_app/sounds /var/log/asterisk/cdr-csv /var/spool/asterisk/voicemail /run/asterisk

/usr/sbin/asterisk -f -n >>/var/log/asterisk/console.log 2>&1 </dev/null &
asterisk_pid=$!
app_pid=

stop() {
    trap - TERM INT
    # The app first: it drains its calls back to the dialplan; then Asterisk.
    if [[ -n $app_pid ]]; then kill -TERM "$app_pid" 2>/dev/null || true; wait "$app_pid" 2>/dev/null || true; fi
    /usr/sbin/asterisk -rx "core stop now" >/dev/null 2>&1 || kill -TERM "$asterisk_pid" 2>/dev/null || true
    wait "$asterisk_pid" 2>/dev/null || true
}
trap 'stop; exit 0' TERM INT

# The app itself retries ARI with backoff; this wait only keeps its first log lines clean.
for _ in $(seq 1 150); do
    (exec 3<>/dev/tcp/127.0.0.1/8088) 2>/dev/null && break
    kill -0 "$asterisk_pid" 2>/dev/null || { tail -n 30 /var/log/asterisk/console.log >&2; echo "Asterisk exited during start" >&2; exit 1; }
    sleep 0.2
done

PBX_ARI_PASSWORD=$PBX_ARI_PASSWORD pbx-app run "$@" &
app_pid=$!
# Whichever ends first ends the container.
set +e
wait -n "$asterisk_pid" "$app_pid"
code=$?
echo "pbx-entrypoint: $( kill -0 "$app_pid" 2>/dev/null && echo Asterisk || echo pbx-app ) exited ($code), stopping" >&2
stop
exit $(( code == 0 ? 1 : code ))
