"""Accounts: the administrators' list (invite, disable, reset, role), "My account" and the
one-time links."""
