"""The call journal (what happened, leg by leg) and the history a manager reads from it."""
