"""The dialplans over HTTP, for the Flow Builder and other editors (admin keys only).

    GET  /v1/dialplans/schema                      the verb schema as JSON Schema
    GET  /v1/dialplans                             the files, each with its ETag
    GET  /v1/dialplans/{file}                      JSON document + line of every entry; ETag
    PUT  /v1/dialplans/{file}                      {"document": ...} or {"yaml": "..."}; If-Match
    GET  /v1/dialplans/{file}/backups              numbered backups, newest first
    GET  /v1/dialplans/{file}/backups/{n}          one backup's YAML
    POST /v1/dialplans/{file}/backups/{n}/restore  put it back (If-Match), checked like a PUT

A key is an admin key when its settings say ``admin: true`` (``IVR_API_KEY`` is one).
"""
from __future__ import annotations

from .errors import ApiError
from .fields import json_body
from ..dialplan.files import DialplanFiles, FileProblem
from ..dialplan.json_schema import dialplan_json_schema

_STATUS = {"not_found": 404, "bad_name": 404, "precondition_required": 428,
           "precondition_failed": 412, "invalid": 422, "bad_document": 400}


def authorise_admin(api, request) -> str:
    """The /v1 key check, then: is this key allowed to see and edit the dialplans?"""
    key, settings = api.keys.authenticate(request.requestHeaders)
    api.limiter.check("key:" + key, settings.get("rate"), settings.get("burst"))
    if settings.get("admin") is not True:
        raise ApiError(403, "forbidden", "this API key is not an admin key "
                                         "(give it admin: true in config/api.yaml)")
    return settings.get("name") or "key"


def _header(request, name: bytes) -> str | None:
    value = request.getHeader(name)
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value


def dialplan_routes(app, api) -> None:
    schema = dialplan_json_schema()

    def files() -> DialplanFiles:
        if api.dialplan_files is None:
            raise ApiError(404, "not_found", "this server has no dialplan directory")
        return api.dialplan_files

    def problem(request, exc: FileProblem):
        status = _STATUS[exc.kind]
        error = {"code": exc.kind, "message": exc.message}
        if exc.errors:
            error["errors"] = exc.errors
            error["lines"] = exc.lines
            error["message"] = exc.message + ": " + "; ".join(e["text"] for e in exc.errors[:5])
        return api.respond(request, status, {"error": error})

    def run(request, fn):
        try:
            return fn()
        except FileProblem as exc:
            return problem(request, exc)

    def saved(request, s):
        return api.respond(request, 200, {"file": s.file, "etag": s.etag, "backup": s.backup,
                                          "reload_errors": s.reload_errors},
                           {"ETag": s.etag})

    @app.route("/v1/dialplans/schema", methods=["GET"])
    def get_schema(request):
        authorise_admin(api, request)
        return api.respond(request, 200, schema)

    @app.route("/v1/dialplans", methods=["GET"])
    def list_files(request):
        authorise_admin(api, request)

        def body():
            f = files()
            return api.respond(request, 200, {"files": [f.read(n) for n in f.names()],
                                              "entries": f.entries()})
        return run(request, body)

    @app.route("/v1/dialplans/<name>", methods=["GET"])
    def get_file(request, name):
        authorise_admin(api, request)

        def body():
            doc = files().read(name)
            return api.respond(request, 200, doc, {"ETag": doc["etag"]})
        return run(request, body)

    @app.route("/v1/dialplans/<name>", methods=["PUT"])
    def put_file(request, name):
        authorise_admin(api, request)
        body = json_body(request)
        if ("document" in body) == ("yaml" in body):
            raise ApiError(400, "invalid_field", "send exactly one of 'document' or 'yaml'")
        text = body.get("yaml")
        if text is not None and not isinstance(text, str):
            raise ApiError(400, "invalid_field", "'yaml' must be a string")
        return run(request, lambda: saved(request, files().save(
            name, document=body.get("document"), text=text,
            if_match=_header(request, b"if-match"),
            if_none_match=_header(request, b"if-none-match"))))

    @app.route("/v1/dialplans/<name>/backups", methods=["GET"])
    def list_backups(request, name):
        authorise_admin(api, request)
        return run(request, lambda: api.respond(request, 200, {
            "file": name, "backups": files().backups(name)}))

    @app.route("/v1/dialplans/<name>/backups/<int:number>", methods=["GET"])
    def get_backup(request, name, number):
        authorise_admin(api, request)

        def body():
            data = files().backup_text(name, number)
            return api.respond(request, 200, {"file": name, "number": number,
                                              "yaml": data.decode("utf-8", "replace")})
        return run(request, body)

    @app.route("/v1/dialplans/<name>/backups/<int:number>/restore", methods=["POST"])
    def restore_backup(request, name, number):
        authorise_admin(api, request)
        return run(request, lambda: saved(request, files().restore(
            name, number, _header(request, b"if-match"), _header(request, b"if-none-match"))))
