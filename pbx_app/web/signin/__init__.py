"""Sign in and sessions: the sign-in form and its signed token, the limits on guessing, the
sessions kept in the accounts database."""
