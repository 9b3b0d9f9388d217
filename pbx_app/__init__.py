"""pbx_app: a client who calls an employee directly is never lost when the employee does not pick up."""
