# pbx_app + Asterisk 22 in one image, built from Debian's packages with the same recipe the test
# bed proves (scripts/asterisk-packages.sh). scripts/image build | test builds and proves it.
#   docker build --network host -t pbx_app .
#   docker run -d --name pbx --network host -v $PWD/config/policy.yaml:/etc/pbx_app/policy.yaml pbx_app
# No registry? scripts/image build makes a sid base with debootstrap and passes it as BASE.
ARG BASE=debian:sid-slim
FROM ${BASE}

COPY scripts/asterisk-packages.sh /tmp/asterisk-packages.sh
RUN sh /tmp/asterisk-packages.sh && rm /tmp/asterisk-packages.sh

# The app's dependencies from Debian's archive (same mirror as Asterisk, security fixes through
# apt, no compiler and no PyPI needed); the app itself from this tree, installed the way a
# user installs it (not editable): its wheel carries the web page's templates and static
# files, and the standard sounds under venv/share/pbx_app/sounds.
RUN apt-get -o Acquire::Check-Valid-Until=false update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    python3 python3-venv python3-setuptools python3-aiohttp python3-ruamel.yaml python3-psycopg \
    python3-prometheus-client python3-argon2 python3-jinja2 python3-babel python3-panoramisk python3-yaml \
    python3-ldap3 sox espeak-ng \
 && apt-get clean && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/pbx_app
COPY pyproject.toml README.md ./
COPY pbx_app ./pbx_app
COPY sounds ./sounds
# The wheel carries the dialplan too (`pbx-app asterisk install` copies it into a site's config).
COPY dialplan ./dialplan
RUN python3 -m venv --system-site-packages /opt/pbx_app/venv \
 && /opt/pbx_app/venv/bin/pip install -q --no-cache-dir --disable-pip-version-check --no-index --no-deps --no-build-isolation . \
 && rm -rf /opt/pbx_app/pbx_app /opt/pbx_app/sounds /opt/pbx_app/dialplan /opt/pbx_app/build \
 && cd / && /opt/pbx_app/venv/bin/python -c "import pbx_app.engine_process, pbx_app.history.postgres_store, pbx_app.users.store" \
 && ln -s /opt/pbx_app/venv/bin/pbx-app /usr/local/bin/pbx-app

# We own /etc/asterisk entirely, as the test bed does.
RUN rm -rf /etc/asterisk && mkdir -p /etc/asterisk /etc/pbx_app /var/lib/pbx_app/sounds /var/log/asterisk/cdr-csv
COPY config/asterisk/ /etc/asterisk/
COPY dialplan/ /etc/asterisk/
COPY sounds/en/ /usr/share/asterisk/sounds/en_US_f_Allison/pbx_app/
COPY sounds/ru/ /usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU/pbx_app/
COPY config/policy.yaml /etc/pbx_app/policy.yaml
COPY docker/entrypoint.sh /usr/local/bin/pbx-entrypoint

# Everything the app writes lives under /var/lib/pbx_app (mount a volume there to keep it):
# web users, the audit log, announcements, the call journal and its spool.
ENV PBX_ARI_URL=http://127.0.0.1:8088 PBX_ARI_USER=pbx_app PBX_POLICY=/etc/pbx_app/policy.yaml \
    PBX_ANNOUNCEMENTS_DIR=/var/lib/pbx_app/sounds PBX_USERS=/var/lib/pbx_app/users.json \
    PBX_AUDIT_LOG=/var/lib/pbx_app/audit.jsonl PBX_DATABASE_URL=sqlite:////var/lib/pbx_app/journal.db \
    PBX_SPOOL_DIR=/var/lib/pbx_app/spool
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pbx-entrypoint"]
