#!/bin/sh
# Starts Asterisk, waits for ARI, then runs the app in the foreground. The ARI password comes
# from PBX_ARI_PASSWORD or the file named by PBX_ARI_PASSWORD_FILE (a Docker secret).
set -eu
if [ -n "${PBX_ARI_PASSWORD_FILE:-}" ]; then PBX_ARI_PASSWORD=$(cat "$PBX_ARI_PASSWORD_FILE"); fi
: "${PBX_ARI_PASSWORD:?set PBX_ARI_PASSWORD or PBX_ARI_PASSWORD_FILE}"
umask 077
printf '[%s]\ntype = user\nread_only = no\npassword = %s\n' "$PBX_ARI_USER" "$PBX_ARI_PASSWORD" >/etc/asterisk/ari_users.conf
/usr/sbin/asterisk -f -n >/var/log/asterisk/console.log 2>&1 &
i=0
# The app itself retries with backoff; this only keeps its first log lines clean.
until /opt/pbx_app/venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', 8088), 1)" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 150 ] || { echo "Asterisk did not start" >&2; exit 1; }
    sleep 0.2
done
export PBX_ARI_PASSWORD
exec /opt/pbx_app/venv/bin/pbx-app run
