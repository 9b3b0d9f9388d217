# pbx_app + Asterisk 22 in one image, built from Debian's packages with the same recipe the test
# bed proves (scripts/asterisk-packages.sh). Run:
#   docker build -t pbx_app .
#   docker run --network host -e PBX_ARI_PASSWORD=... -v $PWD/config/policy.yaml:/etc/pbx_app/policy.yaml pbx_app
FROM debian:sid-slim

COPY scripts/asterisk-packages.sh /tmp/asterisk-packages.sh
RUN sh /tmp/asterisk-packages.sh && rm /tmp/asterisk-packages.sh

RUN apt-get -o Acquire::Check-Valid-Until=false update -q \
 && apt-get install -y -q --no-install-recommends python3 python3-venv sox espeak-ng \
 && apt-get clean && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/pbx_app
COPY pyproject.toml README.md ./
COPY pbx_app ./pbx_app
RUN python3 -m venv /opt/pbx_app/venv && /opt/pbx_app/venv/bin/pip install --no-cache-dir .

# We own /etc/asterisk entirely, as the test bed does.
RUN rm -rf /etc/asterisk && mkdir -p /etc/asterisk /etc/pbx_app /var/lib/pbx_app/sounds
COPY config/asterisk/ /etc/asterisk/
COPY dialplan/ /etc/asterisk/
COPY sounds/en/ /usr/share/asterisk/sounds/en_US_f_Allison/pbx_app/
COPY sounds/ru/ /usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU/pbx_app/
COPY config/policy.yaml /etc/pbx_app/policy.yaml
COPY docker/entrypoint.sh /usr/local/bin/pbx-entrypoint

ENV PBX_ARI_URL=http://127.0.0.1:8088 PBX_ARI_USER=pbx_app PBX_POLICY=/etc/pbx_app/policy.yaml \
    PBX_ANNOUNCEMENTS_DIR=/var/lib/pbx_app/sounds
ENTRYPOINT ["/usr/local/bin/pbx-entrypoint"]
