"""Settings: an employee's profile page and the JSON API that reads and saves what happens to
their calls (no answer, busy, unreachable, schedule, notices) in the policy file."""
