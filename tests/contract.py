"""Every success answer a test produces must be one the route declares with ``@endpoint``.

Installed on every test app: a status, media type or JSON body that the declaration (and so
the OpenAPI document built from it) does not describe fails the test that caused it.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

from vault.api import JSON, EndpointSpec


def _spec() -> EndpointSpec | None:
    if request.url_rule is None:
        return None
    view = current_app.view_functions[request.url_rule.endpoint]
    spec = getattr(view, "haven_endpoint", None)
    return spec if isinstance(spec, EndpointSpec) else None


def check_answer(response: Response) -> Response:
    """Raise if a success answer is not among the route's declared replies."""
    spec = _spec()
    if spec is None or response.status_code >= 400 or request.method == "HEAD":
        return response
    route = f"{request.method} {request.url_rule}"
    replies = [r for r in spec.replies if r.status == response.status_code]
    assert replies, f"{route} answered {response.status_code}, which it does not declare"
    if all(r.media_type is None for r in replies):
        # A 304 may repeat the representation's headers (RFC 9110 §15.4.5) and werkzeug never
        # sends its body; a 204 carries neither.
        if response.status_code == 204:
            assert not response.get_data(), f"{route}: a 204 has a body"
            assert "Content-Type" not in response.headers, f"{route}: a 204 has a type"
        return response
    declared = {r.media_type for r in replies}
    assert response.mimetype in declared, f"{route}: {response.mimetype} is not in {declared}"
    if response.mimetype == JSON:
        model = next(r.model for r in replies if r.media_type == JSON)
        if model is not None:
            model.model_validate_json(response.get_data())
    return response


def install(app: Flask) -> None:
    """Check every answer of ``app`` against its route's declaration, after every other hook."""
    app.after_request_funcs.setdefault(None, []).insert(0, check_answer)
