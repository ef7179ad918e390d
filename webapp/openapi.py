"""The OpenAPI 3 description of /api, served at /api/openapi.json.

Kept true by tests/service, which validate real responses against it with openapi-core.
"""

from __future__ import annotations

from pipeline import Direction, InputErrorCode
from webapp.models import STAGES

_STRING_OR_NULL = {"type": ["string", "null"]}
_URL_OR_NULL = {"type": ["string", "null"]}


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _image(description: str, mime_types: list[str]) -> dict:
    return {
        "description": description,
        "content": {m: {} for m in mime_types},  # binary: no schema (OpenAPI 3.1)
    }


def _job_id_param() -> dict:
    return {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}


SCHEMAS: dict = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "machine code: one of the intake codes ("
                        + ", ".join(c.value for c in InputErrorCode)
                        + "), or model_not_installed, csrf_failed, not_found, file_too_large, "
                        "rate_limited, database_unavailable",
                    },
                    "message": {"type": "string", "description": "safe to show to the person"},
                },
            }
        },
    },
    "Job": {
        "type": "object",
        "required": [
            "id", "status", "stage", "queue_position", "direction", "pair", "interaction", "source_domain",
            "target_domain", "crop", "options", "attempts", "worker", "error", "created_at", "started_at",
            "finished_at", "elapsed_ms", "timings_ms", "models", "untrained", "upload", "urls",
        ],
        "properties": {
            "id": {"type": "string", "description": "unguessable public id"},
            "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
            "stage": {"type": ["string", "null"], "enum": [*STAGES, None],
                      "description": "the stage the job is in or last entered"},
            "queue_position": {"type": ["integer", "null"], "minimum": 1,
                               "description": "1 = next to run; null unless queued"},
            "direction": {"type": "string", "enum": [d.value for d in Direction]},
            "label": {"type": "string"},
            "pair": {"type": "string"},
            "interaction": {"type": "string", "enum": ["scratch", "hover-focus", "scroll-reveal"]},
            "source_domain": {"type": "string"},
            "target_domain": {"type": "string"},
            "crop": {"type": "array", "items": {"type": "integer"}, "minItems": 3, "maxItems": 3,
                     "description": "[x, y, size] in pixels of the EXIF-rotated upload"},
            "options": {
                "type": "object",
                "required": ["enhance", "size"],
                "properties": {"enhance": {"type": "boolean"}, "size": {"type": "integer", "enum": [256, 512]}},
            },
            "attempts": {"type": "integer", "minimum": 0},
            "worker": {**_STRING_OR_NULL, "description": "the worker (name@host) that ran it last"},
            "error": {
                "oneOf": [
                    {"type": "null"},
                    {"type": "object", "required": ["code", "message"],
                     "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
                ]
            },
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "elapsed_ms": {"type": "integer", "description": "from created_at to finished_at (or now)"},
            "stage_started_at": {"type": "object", "additionalProperties": {"type": "string", "format": "date-time"}},
            "timings_ms": {"type": "object", "additionalProperties": {"type": "number"},
                           "description": "milliseconds per finished stage"},
            "models": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "kind", "sha256", "trained"],
                    "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                                   "sha256": {"type": "string"}, "trained": {"type": "boolean"}},
                },
            },
            "untrained": {"type": "boolean"},
            "warning": {"type": "string"},
            "upload": {
                "type": "object",
                "required": ["filename", "width", "height", "format", "byte_size"],
                "properties": {"filename": {"type": "string"}, "width": {"type": "integer"},
                               "height": {"type": "integer"}, "format": {"type": "string"},
                               "byte_size": {"type": "integer"}},
            },
            "urls": {
                "type": "object",
                "required": ["self", "page", "result_page", "original", "before", "result", "side_by_side",
                             "thumbnail"],
                "properties": {
                    "self": {"type": "string"}, "page": {"type": "string"}, "result_page": {"type": "string"},
                    "original": {"type": "string"}, "before": _URL_OR_NULL, "result": _URL_OR_NULL,
                    "side_by_side": _URL_OR_NULL, "thumbnail": {"type": "string"},
                },
            },
        },
    },
    "JobList": {
        "type": "object",
        "required": ["jobs", "page", "per_page", "total", "pages"],
        "properties": {
            "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
            "page": {"type": "integer"}, "per_page": {"type": "integer"},
            "total": {"type": "integer"}, "pages": {"type": "integer"},
        },
    },
    "Directions": {
        "type": "object",
        "required": ["directions", "limits"],
        "properties": {
            "directions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "label", "pair", "source", "target", "interaction", "installed",
                                 "trained", "reason"],
                    "properties": {
                        "name": {"type": "string", "enum": [d.value for d in Direction]},
                        "label": {"type": "string"}, "pair": {"type": "string"}, "source": {"type": "string"},
                        "target": {"type": "string"}, "interaction": {"type": "string"},
                        "installed": {"type": "boolean"}, "trained": {"type": "boolean"},
                        "reason": _STRING_OR_NULL,
                    },
                },
            },
            "limits": {
                "type": "object",
                "required": ["max_bytes", "max_pixels", "formats", "min_side"],
                "properties": {"max_bytes": {"type": "integer"}, "max_pixels": {"type": "integer"},
                               "formats": {"type": "array", "items": {"type": "string"}},
                               "min_side": {"type": "integer"}},
            },
        },
    },
}


def openapi_document() -> dict:
    """The whole document (built per request: cheap, and never stale)."""
    job = {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Seasons API",
            "version": "1",
            "description": (
                "Turn a photo into another season or time of day. Submit a job, poll it until it "
                "succeeds or fails, then fetch its files. A browser's POST must carry the page's CSRF "
                "token in X-CSRFToken; clients sending no Cookie, Origin or Referer need none."
            ),
        },
        "paths": {
            "/api/jobs": {
                "post": {
                    "summary": "Submit a photo for translation",
                    "requestBody": {
                        "required": True,
                        "content": {"multipart/form-data": {"schema": {
                            "type": "object",
                            "required": ["file", "direction"],
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "direction": {"type": "string", "enum": [d.value for d in Direction]},
                                "crop": {"type": "string", "pattern": r"^\d+,\d+,\d+$",
                                         "description": "x,y,size in pixels of the EXIF-rotated photo; "
                                                        "default: the centred largest square"},
                                "enhance": {"type": "string", "enum": ["true", "false"], "default": "true"},
                                "size": {"type": "string", "enum": ["256", "512"], "default": "512"},
                            },
                        }}},
                    },
                    "responses": {
                        "202": {"description": "queued; Location is the job's URL",
                                "headers": {"Location": {"schema": {"type": "string"}}}, "content": job},
                        "400": _error("bad file, crop box, direction or option"),
                        "403": _error("a browser request without a valid CSRF token"),
                        "409": _error("model_not_installed: this deployment lacks the direction's model"),
                        "413": _error("file_too_large"),
                        "429": _error("rate_limited"),
                        "503": _error("database_unavailable"),
                    },
                },
                "get": {
                    "summary": "The job history, newest first",
                    "parameters": [
                        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
                        {"name": "per_page", "in": "query",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
                        {"name": "status", "in": "query",
                         "schema": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]}},
                        {"name": "direction", "in": "query",
                         "schema": {"type": "string", "enum": [d.value for d in Direction]}},
                    ],
                    "responses": {
                        "200": {"description": "one page of jobs", "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/JobList"}}}},
                        "400": _error("bad filter"),
                        "404": _error("HISTORY_VISIBILITY=none: this deployment lists no jobs"),
                    },
                },
            },
            "/api/jobs/{job_id}": {
                "get": {
                    "summary": "One job: status, stage, queue position, timings, file URLs",
                    "parameters": [_job_id_param()],
                    "responses": {"200": {"description": "the job", "content": job}, "404": _error("no such job")},
                },
            },
            **{
                f"/api/jobs/{{job_id}}/{kind}": {
                    "get": {
                        "summary": summary,
                        "parameters": [_job_id_param()],
                        "responses": {"200": _image(summary, mime_types), "404": _error("no such job or file yet")},
                    }
                }
                for kind, summary, mime_types in (
                    ("original", "The uploaded file as sent",
                     ["image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff", "image/bmp"]),
                    ("before", "The cropped input at the output size (PNG)", ["image/png"]),
                    ("result", "The translated image (PNG)", ["image/png"]),
                    ("side-by-side", "Before | after in one PNG", ["image/png"]),
                    ("thumbnail", "A small JPEG of the result, or of the original until then", ["image/jpeg"]),
                )
            },
            "/api/directions": {
                "get": {
                    "summary": "The six directions, whether each is installed, and the upload limits",
                    "responses": {"200": {"description": "directions and limits", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Directions"}}}}},
                },
            },
            "/api/openapi.json": {
                "get": {"summary": "This document",
                        "responses": {"200": {"description": "OpenAPI 3.1",
                                              "content": {"application/json": {"schema": {"type": "object"}}}}}},
            },
        },
        "components": {"schemas": SCHEMAS},
    }
