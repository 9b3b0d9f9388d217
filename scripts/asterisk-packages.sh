#!/bin/sh
# Installs Asterisk 22 from Debian's packages. Runs inside the debootstrap sid root (the test
# bed) and inside the debian:sid-slim image (Dockerfile): one recipe for what we test and ship.
set -eu
export DEBIAN_FRONTEND=noninteractive
# sid's Release file can be past its Valid-Until date on a mirror snapshot.
APT_OPTS="-o Acquire::Check-Valid-Until=false -o Acquire::Retries=3"
apt-get $APT_OPTS update -q
apt-get $APT_OPTS install -y -q --no-install-recommends \
    asterisk asterisk-modules asterisk-config \
    asterisk-core-sounds-en-gsm asterisk-core-sounds-ru-gsm \
    ca-certificates
# Debian installs the Russian prompts without the 'ru' folder name that a channel with
# language=ru looks up.
ln -sfn ru_RU_f_IvrvoiceRU /usr/share/asterisk/sounds/ru
mkdir -p /var/lib/pbx_app/sounds
apt-get clean
rm -rf /var/lib/apt/lists/*
