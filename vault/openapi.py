"""The OpenAPI 3.1 document, built from the routes' ``@endpoint`` declarations."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from vault.api import ANONYMOUS, EndpointSpec, endpoint
from vault.security import JSON, UNSAFE_METHODS

bp = Blueprint("openapi", __name__)

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def endpoint_specs(app: Flask) -> list[tuple[str, str, str, EndpointSpec | None]]:
    """Every (rule, method, endpoint name, spec) the app serves, static files excluded."""
    rows = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        view = app.view_functions[rule.endpoint]
        spec = getattr(view, "haven_endpoint", None)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            rows.append((rule.rule, method, rule.endpoint, spec))
    return rows


def build_document(app: Flask) -> dict[str, Any]:
    """Assemble the OpenAPI document."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for rule, method, name, spec in endpoint_specs(app):
        if spec is None:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)
        op: dict[str, Any] = {
            "operationId": name.replace(".", "_"),
            "summary": spec.summary,
            "responses": {
                "default": {
                    "description": "error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
        }
        params = re.findall(r"{([a-z_]+)}", path)
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        if spec.roles == ANONYMOUS:
            op["security"] = []
        else:
            op["x-roles"] = sorted(str(r) for r in spec.roles)
        if spec.body is not None:
            schema = spec.body.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[spec.body.__name__] = schema
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{spec.body.__name__}"}
                    }
                },
            }
        elif spec.media_type != JSON and method in UNSAFE_METHODS:
            op["requestBody"] = {
                "required": True,
                "content": {spec.media_type: {"schema": {"type": "string", "format": "binary"}}},
            }
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Haven API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "__Host-haven"}
            },
        },
        "security": [{"session": []}],
    }


@bp.get("/api/v1/openapi.json")
@endpoint("This document", roles=ANONYMOUS)
def openapi() -> Response:
    """Serve the OpenAPI document."""
    return jsonify(build_document(current_app))
