"""What the PBX dials out (callbacks today, forwards to outside numbers tomorrow) is guarded
against toll fraud: the number must match the site's allowed patterns and none of its denied
ones (patterns.py, pure), and the calls out per number, per employee and per site in the last
hour stay under the site's limits (limits.py: counted in the journal's database, shared by every
engine). guard.py is the one place that says yes or no, and why.

Nothing is imported here: the policy's model imports patterns.py, and must not pull the guard
(which reads the model) in with it."""
