-- The table cdr_pgsql writes (see cdr_pgsql.conf.sample). cdr_pgsql fills each column by its
-- name: calldate/answer/end are the leg's start, answer (NULL: never answered) and end;
-- linkedid groups the legs of one call; userfield is pbx_app's "callid:leg:role:who", which
-- joins a row to the app's journal (calls.call_id, legs.leg).
CREATE TABLE IF NOT EXISTS cdr (
    calldate timestamptz NOT NULL,
    answer timestamptz,
    "end" timestamptz,
    clid text,
    src text,
    dst text,
    dcontext text,
    channel text,
    dstchannel text,
    lastapp text,
    lastdata text,
    duration integer,
    billsec integer,
    disposition text,
    amaflags text,
    accountcode text,
    uniqueid text,
    linkedid text,
    sequence integer,
    userfield text
);
CREATE INDEX IF NOT EXISTS cdr_linkedid ON cdr (linkedid);
CREATE INDEX IF NOT EXISTS cdr_calldate ON cdr (calldate);
-- The dialplan's own legs (calls no engine saw): the engines look for them every sweep (history/cdr.py).
CREATE INDEX IF NOT EXISTS cdr_fallback ON cdr (calldate) WHERE userfield LIKE '%:fallback%';
