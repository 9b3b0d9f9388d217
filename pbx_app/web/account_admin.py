"""stub"""


def add_routes(webapp) -> None:
    pass
