"""`python -m pbx_app.policy.child FILE [ANNOUNCEMENTS_DIR]` (or ``--stdin SOURCE`` for a
published body): reads and checks a policy in a process of its own and writes the result as
pickles on stdout, the employees, departments and CRM clients in small chunks. The engine that
started it unpickles one chunk per turn of its event loop (swap.py): nothing in the engine
competes with its event loop for the GIL while a 10,000-employee policy is parsed."""

from __future__ import annotations

import dataclasses
import pickle
import sys
from itertools import islice

from .loader import Analysis, analyse_file, analyse_policy

CHUNK = 40  # entries per chunk: unpickling one takes well under a millisecond


def _chunks(table: dict, name: str):
    items = iter(table.items())
    while batch := list(islice(items, CHUNK)):
        yield name, pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)


def packed(analysis: Analysis) -> bytes:
    """(policy without its tables, errors, warnings, [(table, pickled chunk), …])."""
    policy, chunks = analysis.policy, []
    if policy is not None:
        chunks += _chunks(policy.employees, "employees")
        chunks += _chunks(policy.departments, "departments")
        chunks += _chunks(policy.crm.clients, "clients")
        policy = dataclasses.replace(policy, employees={}, departments={},
                                     crm=dataclasses.replace(policy.crm, clients={}))
    return pickle.dumps((policy, analysis.errors, analysis.warnings, chunks), protocol=pickle.HIGHEST_PROTOCOL)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--stdin"]:
        source, folder = argv[1], (argv[2] if len(argv) > 2 and argv[2] else None)
        analysis = analyse_policy(sys.stdin.buffer.read().decode("utf-8"), source, folder)
    else:
        analysis = analyse_file(argv[0], argv[1] if len(argv) > 1 and argv[1] else None)
    sys.stdout.buffer.write(packed(analysis))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
