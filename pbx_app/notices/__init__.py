"""Missed-call and voicemail notices: what a notice is (kinds, recipients, what happened), the
durable outbox in the journal's database, and `pbx-app notify`, the process that turns finished
calls into notices and sends them by e-mail (SMTP) and to an optional webhook. The engines never
talk to SMTP: a notice can never delay a call."""
