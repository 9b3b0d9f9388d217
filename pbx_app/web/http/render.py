"""A page's HTML: the template rendered in the visitor's language, with the header naming the
person as the policy does, and the security headers every answer carries."""

from __future__ import annotations

from aiohttp import web

from ..language.request import MAX_NEXT, texts_for
from ..settings.policy_file import PolicyBroken
from .guard import state, with_headers


def redirect(location: str) -> web.Response:
    return with_headers(web.Response(status=303, headers={"Location": location}))


async def render(request: web.Request, template: str, status: int = 200, **context) -> web.Response:
    user = context.get("user")
    if user is not None and user.extension and not user.display_name:
        try:  # the header names the person as the policy does
            employee = (await state(request).snapshot()).policy.employee(user.extension)
            context["who"] = employee.name if employee else None
        except PolicyBroken:
            pass
    texts = await texts_for(request, user)
    context.setdefault("here", request.path_qs if len(request.path_qs) <= MAX_NEXT else request.path)
    context.setdefault("section", "profile")
    html = state(request).templates.get_template(template).render(**texts.template_context(), **context)
    return with_headers(web.Response(text=html, content_type="text/html", status=status))
