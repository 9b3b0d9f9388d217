"""The plumbing every page shares: bounded bodies, the session and CSRF guards, the Host check,
the HTML render."""
