"""URL rules whose builders are compiled on first use (vault.api.Rule) still match and build."""

from __future__ import annotations

from flask import Flask

from vault import api


def _app() -> Flask:
    app = Flask(__name__, static_folder=None)
    app.url_map.converters["int"] = api.IntConverter
    app.url_rule_class = api.Rule

    @app.get("/users/<user_id>/keys/<int:version>")
    def keys(user_id: str, version: int) -> str:
        return f"{user_id}:{version}"

    @app.get("/cases/", defaults={"page": 1})
    @app.get("/cases/<int:page>")
    def cases(page: int) -> str:
        return str(page)

    return app


def test_a_lazily_built_rule_matches_and_builds_urls_as_werkzeug_would() -> None:
    app = _app()
    rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
    assert all(isinstance(rule, api.Rule) for rule in rules.values())
    client = app.test_client()
    assert client.get("/users/ab-C_d/keys/7").get_data(as_text=True) == "ab-C_d:7"
    assert client.get("/users/x/keys/٧").status_code == 404  # ASCII digits only
    assert client.get("/cases/").get_data(as_text=True) == "1"
    urls = app.url_map.bind("haven.test")
    assert urls.build("keys", {"user_id": "a b", "version": 3}) == "/users/a%20b/keys/3"
    assert urls.build("keys", {"user_id": "u", "version": 3, "q": "x"}) == "/users/u/keys/3?q=x"
    assert urls.build("keys", {"user_id": "u", "version": 3, "q": "x"}, append_unknown=False) == (
        "/users/u/keys/3"
    )
    assert urls.build("cases", {"page": 1}) == "/cases/"
    assert urls.build("cases", {"page": 2}) == "/cases/2"
    # Built twice: the compiled builder is kept and gives the same answer.
    assert urls.build("cases", {"page": 2}) == "/cases/2"
