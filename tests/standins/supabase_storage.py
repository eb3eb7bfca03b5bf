"""TEST STAND-IN for Supabase Storage: an HTTP server on 127.0.0.1 that answers the Storage REST and TUS requests
the way the real server (supabase/storage v1.22.x, checked against v1.22.10 run locally) does. It is not Supabase.

Used ONLY for the faults the real server cannot be made to produce: injected 5xx bursts and 400s with a 5xx in the
body, a connection dropped in the middle of a PATCH or a download, stalled answers (client timeouts), and a
project-wide size limit small enough for a test. Everything else runs against the real server
(tests/services/supabase_storage.py); test_the_standin_answers_as_the_real_server_does in
tests/test_artifacts_supabase.py runs the same raw requests against both and compares every answer the fault tests
rely on.

What it mimics, because the backend must cope with it:

- REST errors as HTTP 400 with the real status in a JSON body: ``{"statusCode": "404", "error": "not_found",
  "message": "Object not found"}``; 409 ``Duplicate`` on an existing path without ``x-upsert: true``; 413
  ``EntityTooLarge`` ("Payload too large") over the project's or the bucket's file size limit; 403 ``Unauthorized``
  for a bad key, except on ``/object/info`` which accepts a bad key and answers 404 "Bucket not found" for a private
  bucket.
- TUS (``/upload/resumable``): ``Tus-Resumable: 1.0.0`` on every answer; POST with ``Upload-Length`` and
  ``Upload-Metadata`` (comma-separated ``key base64(value)`` pairs: bucketName, objectName, contentType,
  cacheControl, metadata) answers 201 with a ``Location`` whose last segment is base64url(bucket/object/version);
  HEAD answers ``Upload-Offset``/``Upload-Length`` with ``Cache-Control: no-store``; PATCH needs
  ``Content-Type: application/offset+octet-stream`` and the right ``Upload-Offset`` (409 otherwise) and answers 204
  with the new offset (``Tus-Complete: 1`` at the end). TUS errors keep their real status with a text body
  ("Maximum size exceeded", "The resource already exists"); authentication errors are 400 + JSON as for REST.
- Listing folders (entries with ``id: null``) and files, signed URLs (``/object/sign/...?token=``), ranged GETs.

Test hooks: :attr:`requests` records every request (method, path below the Storage prefix, lower-case headers,
body size, TUS metadata); :meth:`fail_next` answers the next N matching requests with an error (a burst of 5xx);
:meth:`drop_patch_after` kills the connection on a PATCH once N PATCHes have succeeded; :meth:`cut_next_download`
hangs up in the middle of a download; :meth:`stall_next` holds answers back to trigger client timeouts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

TUS_PATH = "/upload/resumable"


@dataclass
class Recorded:
    method: str
    path: str  # below the Storage prefix, e.g. /object/info/bucket/key
    query: dict[str, list[str]]
    headers: dict[str, str]
    body_size: int
    tus_metadata: dict[str, str] | None = None
    json: object = None


@dataclass
class StoredObject:
    data: bytes
    content_type: str
    cache_control: str
    user_metadata: dict | None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=lambda: _now())

    @property
    def etag(self) -> str:
        return f'"{hashlib.md5(self.data).hexdigest()}"'

    def file_metadata(self) -> dict:
        return {"eTag": self.etag, "size": len(self.data), "mimetype": self.content_type,
                "cacheControl": self.cache_control, "lastModified": self.created_at,
                "contentLength": len(self.data), "httpStatusCode": 200}


@dataclass
class Upload:
    bucket: str
    name: str
    version: str
    length: int
    metadata: dict[str, str]
    upsert: bool
    data: bytearray = field(default_factory=bytearray)  # emptied once the object is stored
    offset: int = 0
    complete: bool = False


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StorageError(Exception):
    def __init__(self, status: str, error: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.code = status, error, message, code


def not_found() -> StorageError:
    return StorageError("404", "not_found", "Object not found", "NoSuchKey")


def bucket_not_found() -> StorageError:
    return StorageError("404", "Bucket not found", "Bucket not found", "NoSuchBucket")


def duplicate() -> StorageError:
    return StorageError("409", "Duplicate", "The resource already exists", "KeyAlreadyExists")


def too_large() -> StorageError:
    return StorageError("413", "Payload too large", "The object exceeded the maximum allowed size", "EntityTooLarge")


class SupabaseStorageStandIn:
    """The stand-in server. ``url`` plays SUPABASE_URL; ``storage_url`` is ``url + /storage/v1``."""

    def __init__(self, *, service_key: str | None = None, file_size_limit: int = 50 * 1024 * 1024,
                 prefix: str = "/storage/v1") -> None:
        self.service_key = service_key or ("eyJhbGciOiJIUzI1NiJ9." + base64.urlsafe_b64encode(
            b'{"role":"service_role"}').decode().rstrip("=") + "." + secrets.token_urlsafe(32))
        self.file_size_limit = file_size_limit
        self.prefix = prefix
        self.buckets: dict[str, dict[str, StoredObject]] = {}
        self.bucket_meta: dict[str, dict] = {}
        self.uploads: dict[str, Upload] = {}
        self.requests: list[Recorded] = []
        self._faults: list[tuple[Callable[[Recorded], bool], int, str, bytes, int]] = []
        self._drop_patch_after: int | None = None
        self._patches_ok = 0
        self._stall: list[tuple[Callable[[Recorded], bool], float, int]] = []
        self._cut_download: int | None = None
        self._lock = threading.RLock()
        self._sign_secret = secrets.token_bytes(16)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> SupabaseStorageStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SupabaseStorageStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def storage_url(self) -> str:
        return f"{self.url}{self.prefix}"

    def reset(self) -> None:
        with self._lock:
            self.buckets.clear()
            self.bucket_meta.clear()
            self.uploads.clear()
            self.requests.clear()
            self._faults.clear()
            self._stall.clear()
            self._drop_patch_after = None
            self._patches_ok = 0
            self._cut_download = None

    # ---- test hooks ----------------------------------------------------------------------------------------

    def fail_next(self, count: int, *, status: int = 503, body: bytes = b"upstream connect error",
                  method: str | None = None, path: str | None = None, after: int = 0) -> None:
        """Answer the next ``count`` matching requests (after letting ``after`` through) with ``status``."""
        def match(request: Recorded) -> bool:
            return (method is None or request.method == method) and (path is None or request.path.startswith(path))

        with self._lock:
            self._faults.append((match, count, str(status), body, after))

    def drop_patch_after(self, successful_patches: int | None) -> None:
        """Once that many PATCHes have succeeded, kill the connection of the next PATCH without an answer (once)."""
        with self._lock:
            self._drop_patch_after = successful_patches
            self._patches_ok = 0

    def cut_next_download(self, after_bytes: int) -> None:
        """The next object GET sends its full headers but only ``after_bytes`` of the body, then hangs up."""
        with self._lock:
            self._cut_download = after_bytes

    def stall_next(self, count: int, seconds: float, *, method: str | None = None) -> None:
        with self._lock:
            self._stall.append((lambda r: method is None or r.method == method, seconds, count))

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        return [r for r in self.requests
                if (method is None or r.method == method) and (path is None or r.path.startswith(path))]

    def object(self, bucket: str, name: str) -> StoredObject | None:
        return self.buckets.get(bucket, {}).get(name)

    # ---- the HTTP side -------------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "SupabaseStorageStandIn/1.0"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                try:
                    standin._dispatch(self)
                except (BrokenPipeError, ConnectionResetError):  # the client hung up (a timeout, a test)
                    self.close_connection = True

            do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

        return Handler

    def _read_body(self, handler: BaseHTTPRequestHandler) -> bytes:
        if handler.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(handler.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    handler.rfile.readline()
                    break
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
            return b"".join(chunks)
        length = int(handler.headers.get("content-length") or 0)
        return handler.rfile.read(length) if length else b""

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        path = unquote(parts.path)
        if not path.startswith(self.prefix + "/") and path != self.prefix:
            self._send(handler, 404, b"not found", "text/plain")
            return
        path = path[len(self.prefix):]
        headers = {k.lower(): v for k, v in handler.headers.items()}
        record = Recorded(handler.command, path, parse_qs(parts.query), headers, 0)
        with self._lock:
            self.requests.append(record)
            fault = self._take_fault(record)
            stall = self._take_stall(record)
            drop = (handler.command == "PATCH" and self._drop_patch_after is not None
                    and self._patches_ok >= self._drop_patch_after)
            if drop:
                self._drop_patch_after = None  # one interruption
        if drop:
            # Read part of the chunk, then kill the connection: the client sees it die mid-request.
            try:
                handler.rfile.read(min(int(headers.get("content-length") or 0), 64 * 1024))
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            handler.close_connection = True
            return
        body = self._read_body(handler) if handler.command in ("POST", "PUT", "PATCH", "DELETE") else b""
        record.body_size = len(body)
        if stall:
            time.sleep(stall)
        if fault is not None:
            status, fault_body = fault
            self._send(handler, int(status), fault_body, "text/plain")
            return
        try:
            if path.startswith(TUS_PATH):
                self._tus(handler, record, path[len(TUS_PATH):], body)
            else:
                self._rest(handler, record, path, body)
        except StorageError as error:
            payload = {"statusCode": error.status, "error": error.error, "message": error.message}
            self._send(handler, 400, json.dumps(payload).encode(), "application/json")
        except Exception as error:  # noqa: BLE001 - a stand-in bug shows as a 500, like the real server's
            payload = {"statusCode": "500", "error": "Internal", "message": repr(error)}
            self._send(handler, 500, json.dumps(payload).encode(), "application/json")

    def _take_fault(self, record: Recorded) -> tuple[str, bytes] | None:
        for index, (match, count, status, body, after) in enumerate(self._faults):
            if match(record):
                if after > 0:
                    self._faults[index] = (match, count, status, body, after - 1)
                    return None
                if count <= 1:
                    self._faults.pop(index)
                else:
                    self._faults[index] = (match, count - 1, status, body, 0)
                return status, body
        return None

    def _take_stall(self, record: Recorded) -> float:
        for index, (match, seconds, count) in enumerate(self._stall):
            if match(record):
                if count <= 1:
                    self._stall.pop(index)
                else:
                    self._stall[index] = (match, seconds, count - 1)
                return seconds
        return 0.0

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: bytes = b"",
              content_type: str | None = None, headers: dict[str, str] | None = None) -> None:
        handler.send_response(status)
        if content_type:
            handler.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD" and body:
            view = memoryview(body)
            for start in range(0, len(view), 1024 * 1024):
                handler.wfile.write(view[start:start + 1024 * 1024])

    def _json(self, handler: BaseHTTPRequestHandler, data: object, status: int = 200) -> None:
        self._send(handler, status, json.dumps(data).encode(), "application/json")

    # ---- auth ----------------------------------------------------------------------------------------------

    def _authorize(self, record: Recorded) -> None:
        auth = record.headers.get("authorization")
        if auth is None:
            raise StorageError("400", "Error", "headers must have required property 'authorization'")
        token = auth[7:] if auth.lower().startswith("bearer ") else auth
        if not hmac.compare_digest(token.encode(), self.service_key.encode()):
            raise StorageError("403", "Unauthorized", "signature verification failed", "AccessDenied")

    # ---- REST ----------------------------------------------------------------------------------------------

    def _rest(self, handler: BaseHTTPRequestHandler, record: Recorded, path: str, body: bytes) -> None:
        method = handler.command
        if method == "GET" and path.startswith("/object/sign/"):
            return self._get_signed(handler, record, path[len("/object/sign/"):])
        if method == "GET" and path.startswith("/object/info/"):
            try:  # the real route allows an invalid JWT and then sees only public buckets
                self._authorize(record)
            except StorageError:
                raise bucket_not_found() from None
        self._authorize(record)
        if body and record.headers.get("content-type", "").startswith("application/json"):
            record.json = json.loads(body)
        if path == "/bucket" and method == "POST":
            return self._create_bucket(handler, record.json or {})
        if path.startswith("/bucket/") and method == "GET":
            return self._get_bucket(handler, path[len("/bucket/"):])
        if path.startswith("/object/info/") and method == "GET":
            return self._info(handler, *self._split(path[len("/object/info/"):]))
        if path.startswith("/object/list/") and method == "POST":
            return self._list(handler, path[len("/object/list/"):], record.json or {})
        if path.startswith("/object/sign/") and method == "POST":
            return self._sign(handler, *self._split(path[len("/object/sign/"):]), record.json or {})
        if path.startswith("/object/") and method == "DELETE" and path.count("/") == 2:
            return self._delete(handler, path[len("/object/"):], record.json or {})
        if path.startswith("/object/") and method in ("POST", "PUT"):
            return self._upload(handler, record, *self._split(path[len("/object/"):]), body)
        if path.startswith("/object/") and method == "GET":
            return self._download(handler, record, *self._split(path[len("/object/"):]))
        raise StorageError("404", "Not Found", f"Route {method}:{path} not found")

    @staticmethod
    def _split(rest: str) -> tuple[str, str]:
        bucket, _, name = rest.partition("/")
        return bucket, name

    def _create_bucket(self, handler: BaseHTTPRequestHandler, data: dict) -> None:
        bucket = data.get("id") or data.get("name")
        with self._lock:
            if bucket in self.buckets:
                raise StorageError("409", "Duplicate", "The resource already exists", "BucketAlreadyExists")
            self.buckets[bucket] = {}
            self.bucket_meta[bucket] = {"id": bucket, "name": data.get("name") or bucket, "owner": "",
                                        "public": bool(data.get("public", False)),
                                        "file_size_limit": data.get("file_size_limit"),
                                        "allowed_mime_types": data.get("allowed_mime_types"),
                                        "created_at": _now(), "updated_at": _now()}
        self._json(handler, {"name": bucket})

    def _get_bucket(self, handler: BaseHTTPRequestHandler, bucket: str) -> None:
        meta = self.bucket_meta.get(bucket)
        if meta is None:
            raise bucket_not_found()
        self._json(handler, meta)

    def _limit(self, bucket: str) -> int:
        """The project's file size limit, or the bucket's where it has a smaller one."""
        own = (self.bucket_meta.get(bucket) or {}).get("file_size_limit")
        return min(self.file_size_limit, int(own)) if own else self.file_size_limit

    def _find(self, bucket: str, name: str) -> StoredObject:
        if bucket not in self.buckets:
            raise bucket_not_found()
        obj = self.buckets[bucket].get(name)
        if obj is None:
            raise not_found()
        return obj

    def _info(self, handler: BaseHTTPRequestHandler, bucket: str, name: str) -> None:
        obj = self._find(bucket, name)
        self._json(handler, {"id": obj.id, "name": name, "version": obj.version, "bucket_id": bucket,
                             "size": len(obj.data), "content_type": obj.content_type,
                             "cache_control": obj.cache_control, "etag": obj.etag, "metadata": obj.user_metadata,
                             "last_modified": obj.created_at, "created_at": obj.created_at})

    def _list(self, handler: BaseHTTPRequestHandler, bucket: str, data: dict) -> None:
        prefix = (data.get("prefix") or "").strip("/")
        limit, offset = int(data.get("limit", 100)), int(data.get("offset", 0))
        entries: dict[str, dict] = {}
        for name, obj in self.buckets.get(bucket, {}).items():
            if prefix and not name.startswith(prefix + "/"):
                continue
            rest = name[len(prefix) + 1:] if prefix else name
            head, sep, _ = rest.partition("/")
            if sep:
                entries.setdefault(head, {"name": head, "id": None, "updated_at": None, "created_at": None,
                                          "last_accessed_at": None, "metadata": None})
            else:
                entries[head] = {"name": head, "id": obj.id, "updated_at": obj.created_at,
                                 "created_at": obj.created_at, "last_accessed_at": obj.created_at,
                                 "metadata": obj.file_metadata()}
        ordered = [entries[k] for k in sorted(entries)]
        self._json(handler, ordered[offset:offset + limit])

    def _delete(self, handler: BaseHTTPRequestHandler, bucket: str, data: dict) -> None:
        removed = []
        with self._lock:
            for name in data.get("prefixes", []):
                obj = self.buckets.get(bucket, {}).pop(name, None)
                if obj is not None:
                    removed.append({"name": name, "bucket_id": bucket, "id": obj.id, "version": obj.version,
                                    "metadata": obj.file_metadata(), "user_metadata": obj.user_metadata})
        self._json(handler, removed)

    def _upload(self, handler: BaseHTTPRequestHandler, record: Recorded, bucket: str, name: str,
                body: bytes) -> None:
        content_type = record.headers.get("content-type", "")
        cache_control, user_metadata = "no-cache", None
        if content_type.startswith("multipart/form-data"):
            fields, (data, mime) = _parse_multipart(content_type, body)
            if "cacheControl" in fields:
                cache_control = f"max-age={fields['cacheControl']}"
            if "metadata" in fields:
                user_metadata = json.loads(fields["metadata"])
        else:
            data, mime = body, content_type or "application/octet-stream"
        upsert = record.headers.get("x-upsert") == "true"
        with self._lock:
            if bucket not in self.buckets:
                raise bucket_not_found()
            if len(data) > self._limit(bucket):
                raise too_large()
            if name in self.buckets[bucket] and not upsert:
                raise duplicate()
            obj = StoredObject(bytes(data), mime, cache_control, user_metadata)
            self.buckets[bucket][name] = obj
        self._json(handler, {"Key": f"{bucket}/{name}", "Id": obj.id})

    def _download(self, handler: BaseHTTPRequestHandler, record: Recorded, bucket: str, name: str) -> None:
        obj = self._find(bucket, name)
        self._serve(handler, record, obj)

    def _serve(self, handler: BaseHTTPRequestHandler, record: Recorded, obj: StoredObject) -> None:
        headers = {"ETag": obj.etag, "Cache-Control": obj.cache_control, "Accept-Ranges": "bytes"}
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", record.headers.get("range", ""))
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(obj.data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(obj.data)}"
            self._send(handler, 206, obj.data[start:end + 1], obj.content_type, headers)
        else:
            with self._lock:
                cut, self._cut_download = self._cut_download, None
            if cut is not None:
                handler.send_response(200)
                handler.send_header("Content-Type", obj.content_type)
                handler.send_header("Content-Length", str(len(obj.data)))
                handler.end_headers()
                handler.wfile.write(obj.data[:cut])
                handler.wfile.flush()
                handler.connection.shutdown(socket.SHUT_RDWR)
                handler.close_connection = True
                return
            self._send(handler, 200, obj.data, obj.content_type, headers)

    def _token(self, bucket: str, name: str, expires_at: int) -> str:
        payload = base64.urlsafe_b64encode(json.dumps({"url": f"{bucket}/{name}", "exp": expires_at}).encode())
        signature = hmac.new(self._sign_secret, payload, hashlib.sha256).hexdigest()
        return f"{payload.decode()}.{signature}"

    def _sign(self, handler: BaseHTTPRequestHandler, bucket: str, name: str, data: dict) -> None:
        expires_in = int(data.get("expiresIn", 0))
        if expires_in < 1:
            raise StorageError("400", "Error", "body/expiresIn must be >= 1")
        self._find(bucket, name)
        token = self._token(bucket, name, int(time.time()) + expires_in)
        self._json(handler, {"signedURL": f"/object/sign/{bucket}/{name}?token={token}"})

    def _get_signed(self, handler: BaseHTTPRequestHandler, record: Recorded, rest: str) -> None:
        bucket, name = self._split(rest)
        token = (record.query.get("token") or [""])[0]
        payload, _, signature = token.rpartition(".")
        good = hmac.new(self._sign_secret, payload.encode(), hashlib.sha256).hexdigest()
        if not payload or not hmac.compare_digest(signature, good):
            raise StorageError("400", "InvalidSignature", "Invalid signature")
        claims = json.loads(base64.urlsafe_b64decode(payload))
        if claims["url"] != f"{bucket}/{name}" or claims["exp"] < time.time():
            raise StorageError("400", "InvalidJWT", "jwt expired")
        self._serve(handler, record, self._find(bucket, name))

    # ---- TUS -----------------------------------------------------------------------------------------------

    def _tus_send(self, handler: BaseHTTPRequestHandler, status: int, text: str = "",
                  headers: dict[str, str] | None = None) -> None:
        self._send(handler, status, text.encode(), "text/plain" if text else None,
                   {"Tus-Resumable": "1.0.0", **(headers or {})})

    def _tus(self, handler: BaseHTTPRequestHandler, record: Recorded, rest: str, body: bytes) -> None:
        method = handler.command
        if method == "OPTIONS":
            return self._tus_send(handler, 204, headers={"Tus-Version": "1.0.0",
                                                         "Tus-Extension": "creation,creation-with-upload,termination",
                                                         "Tus-Max-Size": str(self.file_size_limit)})
        self._authorize(record)  # 400 + JSON, before the TUS handler, like the real server
        if record.headers.get("tus-resumable") != "1.0.0":
            return self._tus_send(handler, 412, "Unsupported version")
        upload_id = rest.strip("/")
        if method == "POST" and not upload_id:
            return self._tus_create(handler, record)
        with self._lock:
            upload = self.uploads.get(upload_id)
        if upload is None and not _well_formed_upload_id(upload_id):
            raise StorageError("400", "InvalidUploadId", "Invalid upload Id")
        if upload is None:
            return self._tus_send(handler, 404, "The file for this url was not found\n")
        if method == "HEAD":
            return self._tus_send(handler, 200, headers={
                "Cache-Control": "no-store", "Upload-Offset": str(upload.offset),
                "Upload-Length": str(upload.length),
                "Upload-Metadata": ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                                            for k, v in upload.metadata.items())})
        if method == "PATCH":
            return self._tus_patch(handler, record, upload, body)
        return self._tus_send(handler, 405, "Method not allowed")

    def _tus_create(self, handler: BaseHTTPRequestHandler, record: Recorded) -> None:
        metadata = {}
        for pair in filter(None, record.headers.get("upload-metadata", "").split(",")):
            key, _, value = pair.strip().partition(" ")
            metadata[key] = base64.b64decode(value).decode() if value else ""
        record.tus_metadata = metadata
        length = record.headers.get("upload-length")
        if length is None or not length.isdigit():
            return self._tus_send(handler, 400, "Upload-Length or Upload-Defer-Length header required")
        if int(length) > self._limit(metadata.get("bucketName", "")):
            return self._tus_send(handler, 413, "Maximum size exceeded")
        bucket, name = metadata.get("bucketName", ""), metadata.get("objectName", "")
        if bucket not in self.buckets:
            return self._tus_send(handler, 404, "Bucket not found")
        upsert = record.headers.get("x-upsert") == "true"
        if name in self.buckets[bucket] and not upsert:
            return self._tus_send(handler, 409, "The resource already exists")
        version = str(uuid.uuid4())
        upload_id = base64.urlsafe_b64encode(f"{bucket}/{name}/{version}".encode()).decode().rstrip("=")
        with self._lock:
            self.uploads[upload_id] = Upload(bucket, name, version, int(length), metadata, upsert)
        host = record.headers.get("host", "127.0.0.1")
        self._tus_send(handler, 201, headers={"Location": f"http://{host}{self.prefix}{TUS_PATH}/{upload_id}"})

    def _tus_patch(self, handler: BaseHTTPRequestHandler, record: Recorded, upload: Upload, body: bytes) -> None:
        if record.headers.get("content-type") != "application/offset+octet-stream":
            return self._tus_send(handler, 415, "Unsupported Media Type")
        offset = record.headers.get("upload-offset")
        with self._lock:
            if offset is None or int(offset) != upload.offset:
                return self._tus_send(handler, 409, "Upload-Offset conflict")
            if upload.offset + len(body) > upload.length:
                return self._tus_send(handler, 413, "Maximum size exceeded")
            upload.data += body
            upload.offset += len(body)
            self._patches_ok += 1
            headers = {"Upload-Offset": str(upload.offset)}
            if upload.offset == upload.length and not upload.complete:
                existing = self.buckets[upload.bucket].get(upload.name)
                if existing is not None and not upload.upsert:
                    return self._tus_send(handler, 409, "The resource already exists")
                cache = upload.metadata.get("cacheControl", "")
                user_metadata = json.loads(upload.metadata["metadata"]) if "metadata" in upload.metadata else None
                self.buckets[upload.bucket][upload.name] = StoredObject(
                    bytes(upload.data), upload.metadata.get("contentType", "application/octet-stream"),
                    f"max-age={cache}" if cache.isdigit() else "no-cache", user_metadata, version=upload.version)
                upload.complete = True
                upload.data = bytearray()
                headers["Tus-Complete"] = "1"
        self._tus_send(handler, 204, headers=headers)


def _well_formed_upload_id(upload_id: str) -> bool:
    """An upload id is base64url(bucket/object/version); anything else the real server answers 400 InvalidUploadId."""
    try:
        decoded = base64.urlsafe_b64decode(upload_id + "=" * (-len(upload_id) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return False
    return decoded.count("/") >= 2 and all(decoded.split("/"))


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], tuple[bytes, str]]:
    """The form fields and the (data, content type) of the ``file`` part of a multipart/form-data body."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type).group(1).encode()
    fields: dict[str, str] = {}
    file_part = (b"", "application/octet-stream")
    for part in body.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part[2:].partition(b"\r\n\r\n")
        content = content[:-2] if content.endswith(b"\r\n") else content
        disposition = re.search(rb'name="([^"]*)"', head)
        name = disposition.group(1).decode() if disposition else ""
        if b"filename=" in head:
            mime = re.search(rb"(?i)content-type:\s*([^\r\n]+)", head)
            file_part = (content, mime.group(1).decode() if mime else "application/octet-stream")
        else:
            fields[name] = content.decode()
    return fields, file_part


def main() -> None:
    """Serve the stand-in in a process of its own (the benchmark does): prints {"url", "service_key"} as one JSON
    line, then serves until stdin closes."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Supabase Storage TEST STAND-IN on 127.0.0.1")
    parser.add_argument("--file-size-limit", type=int, default=50 * 1024 * 1024)
    args = parser.parse_args()
    with SupabaseStorageStandIn(file_size_limit=args.file_size_limit) as server:
        print(json.dumps({"url": server.url, "service_key": server.service_key}), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
