"""The OpenAPI 3.1 document, built from the routes' ``@endpoint`` declarations."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from vault.api import ANONYMOUS, EndpointSpec, Reply, endpoint
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


# The schema of a path parameter, from its URL converter.
CONVERTERS: dict[str, dict[str, Any]] = {
    "default": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
    "string": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
    "int": {"type": "integer", "minimum": 0},
}


def _model_schema(
    model: type[BaseModel], schemas: dict[str, Any], mode: JsonSchemaMode
) -> dict[str, Any]:
    """Register ``model`` (and the models it uses) under components and return its reference."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
    for name, sub in [*schema.pop("$defs", {}).items(), (model.__name__, schema)]:
        # Two models of one name would silently share a schema: refuse to build.
        if schemas.setdefault(name, sub) != sub:
            raise ValueError(f"two different models are both named {name}")
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    """Each path parameter, typed by its URL converter."""
    found = re.findall(r"<(?:([a-z]+)(?:\([^)]*\))?:)?([a-z_]+)>", rule)
    return [
        {"name": name, "in": "path", "required": True, "schema": CONVERTERS[conv or "default"]}
        for conv, name in found
    ]


def _query_parameters(model: type[BaseModel], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    """Each field of a query model as a query parameter."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        prop.pop("title", None)
        description = prop.pop("description", None)
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            param["description"] = description
        params.append(param)
    return params


def _responses(spec: EndpointSpec, schemas: dict[str, Any]) -> dict[str, Any]:
    """The declared successful answers, then the one error shape for every other status."""
    out: dict[str, Any] = {}
    for reply in spec.replies:
        entry = out.setdefault(str(reply.status), {"description": reply.description})
        if reply.headers:
            entry["headers"] = {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in reply.headers.items()
            }
        if reply.media_type is None:
            continue
        if reply.model is not None:
            schema = _model_schema(reply.model, schemas, "serialization")
        elif reply.media_type == JSON:
            schema = {}
        else:
            schema = {"type": "string"}
        entry.setdefault("content", {})[reply.media_type] = {"schema": schema}
    out["default"] = {
        "description": "error",
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return out


def build_document(app: Flask) -> dict[str, Any]:
    """Assemble the OpenAPI document."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for rule_text, method, name, spec in endpoint_specs(app):
        if spec is None:
            continue
        path = re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>", r"{\1}", rule_text)
        op: dict[str, Any] = {
            "operationId": name.replace(".", "_"),
            "summary": spec.summary,
            "responses": _responses(spec, schemas),
        }
        params = _path_parameters(rule_text)
        if spec.query is not None:
            params += _query_parameters(spec.query, schemas)
        params += [
            {"name": h.name, "in": "header", "required": False, "description": h.description}
            | {"schema": dict(h.schema)}
            for h in spec.headers
        ]
        if params:
            op["parameters"] = params
        if spec.roles == ANONYMOUS:
            op["security"] = []
        else:
            op["x-roles"] = sorted(str(r) for r in spec.roles)
        if spec.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {JSON: {"schema": _model_schema(spec.body, schemas, "validation")}},
            }
        elif method in UNSAFE_METHODS:
            # A write without a body still declares its media type (vault/security.py).
            binary = spec.media_type != JSON
            op["requestBody"] = {
                "required": True,
                "content": {
                    spec.media_type: {
                        "schema": {"type": "string", "format": "binary"}
                        if binary
                        else {"type": "object", "maxProperties": 0}
                    }
                },
            }
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Haven API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": app.config["SESSION_COOKIE_NAME"],
                }
            },
        },
        "security": [{"session": []}],
    }


@bp.get("/api/v1/openapi.json")
@endpoint("This document", roles=ANONYMOUS, replies=Reply(200, None, JSON, "OpenAPI 3.1"))
def openapi() -> Response:
    """Serve the OpenAPI document."""
    return jsonify(build_document(current_app))
