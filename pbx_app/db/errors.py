"""What any of the databases raises: one error the callers catch whatever the backend."""


class StoreError(RuntimeError):
    """The database cannot be reached or refused a statement; its message names the database."""
