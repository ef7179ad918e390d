"""The OpenAPI 3.1 description of /api, served at /api/openapi.json.

It states every limit the service enforces, so a request valid per the document is refused only
for what no schema can say (a photo's side or pixel count, a crop box outside the photo), and
then with a documented code. The query and form field schemas here are also the ones that
webapp.validation checks requests against. Kept true by tests/service: openapi-core validates
real responses against it, and schemathesis runs against the live stack.
"""

from __future__ import annotations

from pipeline import Direction, InputErrorCode, IntakeLimits, TranslateOptions
from pipeline.crop import MIN_CROP_SIZE
from pipeline.intake import MIN_SIDE, PHOTO_FORMATS
from pipeline.options import FULL_SIZE, OUTPUT_SIZES
from webapp.errors import ApiErrorCode
from webapp.models import STAGES, JobStatus

#: Sizes the job table stores (an integer column); `full` is offered once it stores the real side.
_FIXED_SIZES = [s for s in OUTPUT_SIZES if s != FULL_SIZE]

_STRING_OR_NULL = {"type": ["string", "null"]}
_URL_OR_NULL = {"type": ["string", "null"]}
_DIRECTIONS = [d.value for d in Direction]
_STATUSES = [s.value for s in JobStatus]
#: The media types of the photo formats the intake accepts.
PHOTO_MEDIA_TYPES = sorted(set(PHOTO_FORMATS.values()))

MAX_PER_PAGE = 100
#: The highest page number: (page - 1) × per_page stays within a 64-bit OFFSET.
MAX_PAGE = 2**31 - 1

#: GET /api/jobs's query parameters, as one object schema.
LIST_QUERY: dict = {
    "type": "object",
    "properties": {
        "page": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1,
                 "x-error-code": InputErrorCode.BAD_OPTION},
        "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": 20,
                     "x-error-code": InputErrorCode.BAD_OPTION},
        "status": {"type": "string", "enum": _STATUSES, "x-error-code": InputErrorCode.BAD_OPTION},
        "direction": {"type": "string", "enum": _DIRECTIONS, "x-error-code": InputErrorCode.UNKNOWN_DIRECTION},
    },
}

_DEFAULT_OPTIONS = TranslateOptions()


def submission_schema(limits: IntakeLimits) -> dict:
    """POST /api/jobs's multipart form; the file's limits are this deployment's."""
    kinds = ", ".join(sorted({f for f in PHOTO_FORMATS if f != "MPO"}))
    return {
        "type": "object",
        "required": ["file", "direction"],
        "properties": {
            "file": {
                "type": "string", "format": "binary", "maxLength": limits.max_bytes,
                "x-min-side": MIN_SIDE, "x-max-pixels": limits.max_pixels,
                "description": f"the photo ({kinds}): at most {limits.max_bytes} bytes (else 413 file_too_large), "
                               f"each side at least {MIN_SIDE} px (else 400 too_small), at most "
                               f"{limits.max_pixels} pixels (else 400 too_many_pixels)",
            },
            "direction": {"type": "string", "enum": _DIRECTIONS, "x-error-code": InputErrorCode.UNKNOWN_DIRECTION},
            "crop": {"type": "string", "pattern": r"^[0-9]+,[0-9]+,[0-9]+$", "x-error-code": InputErrorCode.BAD_CROP,
                     "description": "x,y,size in pixels of the EXIF-rotated photo: size at least "
                                    f"{MIN_CROP_SIZE} and the square inside the photo (else 400 bad_crop); "
                                    "default: the centred largest square"},
            "enhance": {"type": "string", "enum": ["true", "false"], "default": str(_DEFAULT_OPTIONS.enhance).lower(),
                        "x-error-code": InputErrorCode.BAD_OPTION},
            "size": {"type": "string", "enum": [str(s) for s in _FIXED_SIZES], "default": str(_DEFAULT_OPTIONS.size),
                     "x-error-code": InputErrorCode.BAD_OPTION},
        },
    }


def _error(description: str, codes: list[str]) -> dict:
    """A JSON error response whose `code` is one of `codes`."""
    return {
        "description": f"{description}: {', '.join(codes)}",
        "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "enum": codes, "description": "stable, for programs"},
                        "message": {"type": "string", "description": "safe to show to the person"},
                    },
                }
            },
        }}},
    }


def _field_codes(schema: dict) -> list[str]:
    """The codes that refuse the fields of an object schema (files are the intake's)."""
    return sorted({field["x-error-code"] for field in schema["properties"].values() if "x-error-code" in field})


def _image(description: str, mime_types: list[str]) -> dict:
    return {
        "description": description,
        "content": {m: {} for m in mime_types},  # binary: no schema (OpenAPI 3.1)
    }


def _job_id_param() -> dict:
    return {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}


SCHEMAS: dict = {
    "Job": {
        "type": "object",
        "required": [
            "id", "status", "stage", "queue_position", "direction", "pair", "interaction", "source_domain",
            "target_domain", "crop", "options", "attempts", "worker", "error", "created_at", "started_at",
            "finished_at", "elapsed_ms", "timings_ms", "models", "untrained", "upload", "urls",
        ],
        "properties": {
            "id": {"type": "string", "description": "unguessable public id"},
            "status": {"type": "string", "enum": _STATUSES},
            "stage": {"type": ["string", "null"], "enum": [*STAGES, None],
                      "description": "the stage the job is in or last entered"},
            "queue_position": {"type": ["integer", "null"], "minimum": 1,
                               "description": "1 = next to run; null unless queued"},
            "direction": {"type": "string", "enum": _DIRECTIONS},
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
                "properties": {"enhance": {"type": "boolean"}, "size": {"type": "integer", "enum": list(_FIXED_SIZES)}},
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
                        "name": {"type": "string", "enum": _DIRECTIONS},
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


def _job_file(kind: str, summary: str, mime_types: list[str]) -> dict:
    return {"get": {
        "operationId": _file_operation(kind),
        "summary": summary,
        "parameters": [_job_id_param()],
        "responses": {"200": _image(summary, mime_types),
                      "404": _error("no such job, or no such file yet", [ApiErrorCode.NOT_FOUND])},
    }}


def _file_operation(kind: str) -> str:
    """getJobResult, getJobSideBySide…: the operationId of a job file."""
    return "getJob" + kind.title().replace("-", "")


#: The job's files: path suffix, summary, media types.
JOB_FILES = (
    ("original", "The uploaded file as sent", PHOTO_MEDIA_TYPES),
    ("before", "The cropped input at the output size (PNG)", ["image/png"]),
    ("result", "The translated image (PNG)", ["image/png"]),
    ("side-by-side", "Before | after in one PNG", ["image/png"]),
    ("thumbnail", "A small JPEG of the result, or of the original until then", ["image/jpeg"]),
)


def openapi_document(limits: IntakeLimits) -> dict:
    """The whole document for a deployment with these upload limits (built per request: cheap, never stale)."""
    job = {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}
    job_id = {"job_id": "$response.body#/id"}
    links = {
        operation: {"operationId": operation, "parameters": job_id,
                    "description": f"`id` is the job_id of {operation}"}
        for operation in ["getJob", *(_file_operation(kind) for kind, _, _ in JOB_FILES)]
    }
    submission = submission_schema(limits)
    intake_codes = [c for c in InputErrorCode if c != InputErrorCode.FILE_TOO_LARGE]
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
                    "operationId": "createJob",
                    "summary": "Submit a photo for translation",
                    "requestBody": {
                        "required": True,
                        "content": {"multipart/form-data": {
                            "schema": submission,
                            "encoding": {"file": {"contentType": ", ".join(PHOTO_MEDIA_TYPES)}},
                        }},
                    },
                    "responses": {
                        "202": {"description": "queued; Location is the job's URL; poll it until the job has "
                                               "succeeded or failed, then fetch its files",
                                "headers": {"Location": {"schema": {"type": "string"}}}, "content": job,
                                "links": links},
                        "400": _error("bad file, crop box, direction or option",
                                      sorted({*_field_codes(submission), *intake_codes})),
                        "403": _error("a browser request without a valid CSRF token", [ApiErrorCode.CSRF_FAILED]),
                        "409": _error("this deployment lacks the direction's model (or the RDN, with enhance=true)",
                                      [ApiErrorCode.MODEL_NOT_INSTALLED]),
                        "413": _error("the file is over the limit", [InputErrorCode.FILE_TOO_LARGE]),
                        "429": _error("too many submissions from this address", [ApiErrorCode.RATE_LIMITED]),
                        "503": _error("the database is unavailable for a moment",
                                      [ApiErrorCode.DATABASE_UNAVAILABLE]),
                    },
                },
                "get": {
                    "operationId": "listJobs",
                    "summary": "The job history, newest first",
                    "parameters": [{"name": name, "in": "query", "schema": schema}
                                   for name, schema in LIST_QUERY["properties"].items()],
                    "responses": {
                        "200": {"description": "one page of jobs", "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/JobList"}}}},
                        "400": _error("a bad page or filter", _field_codes(LIST_QUERY)),
                        "404": _error("HISTORY_VISIBILITY=none: this deployment lists no jobs",
                                      [ApiErrorCode.NOT_FOUND]),
                    },
                },
            },
            "/api/jobs/{job_id}": {
                "get": {
                    "operationId": "getJob",
                    "summary": "One job: status, stage, queue position, timings, file URLs",
                    "parameters": [_job_id_param()],
                    "responses": {"200": {"description": "the job", "content": job},
                                  "404": _error("no such job", [ApiErrorCode.NOT_FOUND])},
                },
            },
            **{f"/api/jobs/{{job_id}}/{kind}": _job_file(kind, summary, mime_types)
               for kind, summary, mime_types in JOB_FILES},
            "/api/directions": {
                "get": {
                    "operationId": "getDirections",
                    "summary": "The six directions, whether each is installed, and the upload limits",
                    "responses": {"200": {"description": "directions and limits", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Directions"}}}}},
                },
            },
            "/api/openapi.json": {
                "get": {"operationId": "getOpenAPI", "summary": "This document",
                        "responses": {"200": {"description": "OpenAPI 3.1",
                                              "content": {"application/json": {"schema": {"type": "object"}}}}}},
            },
        },
        "components": {"schemas": SCHEMAS},
    }
