"""What Asterisk's cdr_csv writes (config/asterisk/cdr.conf: loguniqueid and loguserfield on)."""

from __future__ import annotations

import csv
import io

# Master.csv's columns, in order.
CSV_COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata", "start",
               "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield")


def master_csv_rows(text: str) -> list[dict[str, str]]:
    return [dict(zip(CSV_COLUMNS, values)) for values in csv.reader(io.StringIO(text))]
