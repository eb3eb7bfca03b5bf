"""supabase:// — Supabase Storage: the official storage3 client for REST, tuspy for resumable (TUS) uploads.

``supabase://BUCKET[/PREFIX]``. The server and key come from the environment only:

- ``SUPABASE_URL`` (``https://<ref>.supabase.co``; the Storage API is at ``/storage/v1``) or
  ``SUPABASE_STORAGE_URL`` (the Storage API itself, e.g. a self-hosted storage server);
- ``SUPABASE_SERVICE_ROLE_KEY`` (or ``SUPABASE_KEY``): sent as ``apikey`` and ``Authorization: Bearer``.

Files up to 6 MB go up in one request; larger ones through the TUS endpoint ``/upload/resumable`` in 6 MB chunks
(the size Supabase requires), with the upload URL saved locally until the upload completes, so an interrupted upload
resumes from the server's offset (HEAD → ``Upload-Offset`` → PATCH from there). The bucket is created (private) on
first upload. Objects carry their sha256 as user metadata; ``exists`` checks it.

How the real server behaves, and what this module does about it:

- REST errors come back as HTTP 400 with the real status in the JSON body (``statusCode``, ``error``, ``message``);
  storage3 turns them into ``StorageApiError`` with that status. TUS errors come with their real status and a text
  body, except authentication errors (400 + JSON, before the TUS handler runs).
- 409 on an existing path without upsert: uploads send ``x-upsert: true`` (a content-addressed object can only be
  replaced by the same bytes, or repaired when its metadata does not match).
- 413 ``EntityTooLarge`` / ``Maximum size exceeded`` over the bucket's file size limit (when the bucket has one that
  small) or the project's upload limit: the error says which, with the Free plan's 50 MB cap and the alternatives.
- A route that does not exist is an HTTP 404 (the gateway's "no Route matched", or the server's own "Route … not
  found" when ``SUPABASE_URL`` points at a server that serves the API at ``/``): that is a wrong endpoint, never an
  empty store or a missing object; the error names the URL and ``SUPABASE_STORAGE_URL``.
- The resume HEAD of a saved TUS upload URL answers 404 when the upload is unknown or expired and 400
  ``InvalidUploadId`` (without a body: it is a HEAD) when the id does not parse: any 4xx but an authentication
  error starts a new upload (the saved URL is replaced once the new one exists).
- storage3 option values must be strings (``"upsert": "true"``); its default content type is text/plain and its
  default timeout 20 s: this module sets ``application/octet-stream`` and its own httpx client and timeouts.

Work-arounds for the official clients (each says why):

- storage3's ``download()`` returns the whole object as bytes (220 MB in memory, no progress, no resume): downloads
  stream the same endpoint (``GET /object/{bucket}/{key}``, same headers) through the requests session the TUS
  uploads use (requests streamed large bodies ~25% faster than httpx here), hashing as they write and resuming a
  dropped transfer with ``Range``.
- tuspy sends every request without a timeout (a stalled server hangs the upload for ever), opens the file anew for
  every chunk and retries any error, 4xx included, after a fixed delay: the uploader here subclasses tuspy's
  ``Uploader`` to send its POST/HEAD/PATCH through one ``requests.Session`` with timeouts, and retries only
  transient failures, with backoff, through :mod:`orchestrator.artifacts.retry`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from orchestrator.artifacts.base import (
    STORE_FAILURE_HINT,
    Artifact,
    ArtifactError,
    ArtifactStore,
    Sha256OnThread,
    is_sha256,
    object_key,
    sha256_from_uri,
)
from orchestrator.artifacts.credentials import (
    SUPABASE_KEY_ENVS,
    SUPABASE_STORAGE_URL_ENV,
    SUPABASE_URL_ENV,
    check_store_uri,
    first_env,
    mask_secrets,
)
from orchestrator.artifacts.progress import Reporter
from orchestrator.artifacts.retry import (
    RetryPolicy,
    call_with_retries,
    default_policy,
    is_retryable_status,
    retry_line,
)
from orchestrator.artifacts.upload_state import ResumableUploads
from orchestrator.config import mask_url

T = TypeVar("T")
MB = 1024 * 1024
TUS_CHUNK = 6 * MB  # Supabase's TUS endpoint takes 6 MB chunks (the last one smaller)
STANDARD_UPLOAD_MAX = 6 * MB  # up to this size one POST; above it, TUS
FREE_PLAN_LIMIT_MB = 50
_UNPARSED = "Unable to parse error message: "  # storage3's words for an error body that is not JSON
CONTENT_TYPE = "application/octet-stream"
CACHE_SECONDS = "31536000"  # content-addressed objects never change
CREDENTIALS_HINT = (f"set {SUPABASE_URL_ENV} (or {SUPABASE_STORAGE_URL_ENV}) and {SUPABASE_KEY_ENVS[0]} (or "
                    f"{SUPABASE_KEY_ENVS[1]}) in the environment; writing objects and creating buckets needs the "
                    "service role key")
SIZE_LIMIT_HINT = (f"Supabase's Free plan caps every file at {FREE_PLAN_LIMIT_MB} MB: on the Pro plan raise the "
                   "upload size limit in the project's Storage settings, or keep checkpoints in an s3:// store "
                   "(Cloudflare R2, MinIO, AWS) with --store or ORCHESTRATOR_STORE")


_TUS_STAGES = {"head": "asking how much of the interrupted upload it holds (TUS HEAD)",
               "create": "creating the resumable upload (TUS POST)",
               "patch": "receiving a chunk of the upload (TUS PATCH)"}


class _ServerError(Exception):
    """A failed Storage request with its real status (taken from the JSON body of a 400 where there is one) and
    the HTTP status it came with."""

    def __init__(self, status: int | None, error: str, message: str, *, stage: str,
                 http_status: int | None = None, url: str | None = None) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message
        self.stage = stage
        self.http_status = http_status if http_status is not None else status
        self.url = url

    @property
    def route_missing(self) -> bool:
        """An HTTP 404 from a REST route: no Storage API at that URL. (The server answers a missing object or
        bucket with HTTP 400 and statusCode 404 in the body; TUS answers an unknown upload with a 404 of its own.)"""
        return self.http_status == 404 and self.stage not in _TUS_STAGES


def parse_supabase_uri(uri: str) -> tuple[str, str]:
    check_store_uri(uri, hint=CREDENTIALS_HINT)
    parts = urlsplit(uri)
    if parts.scheme != "supabase" or not parts.netloc:
        raise ArtifactError(f"{uri!r} is not a supabase:// store URI", "use supabase://BUCKET/PREFIX")
    if parts.query:
        raise ArtifactError(f"supabase://{parts.netloc}{parts.path}: store URIs take no options",
                            "the server and key come from SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY")
    return parts.netloc, unquote(parts.path).strip("/")


def storage_endpoint() -> str | None:
    """The Storage API base URL from the environment (no trailing slash), or None."""
    explicit = os.environ.get(SUPABASE_STORAGE_URL_ENV)
    if explicit:
        return explicit.rstrip("/")
    project = os.environ.get(SUPABASE_URL_ENV)
    if not project:
        return None
    project = project.rstrip("/")
    return project if project.endswith("/storage/v1") else f"{project}/storage/v1"


def _status_of(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _parse_error_body(status: int, body: bytes | str | None, *, stage: str, url: str | None = None) -> _ServerError:
    """The real status of a Storage error: the JSON body's statusCode when there is one, else the HTTP status."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and "statusCode" in data:
        return _ServerError(_status_of(data.get("statusCode")) or status, str(data.get("error") or ""),
                            str(data.get("message") or ""), stage=stage, http_status=status, url=url)
    return _ServerError(status, "", " ".join(text.split())[:200], stage=stage, http_status=status, url=url)


class SupabaseStore(ArtifactStore):
    scheme = "supabase"
    list_page = 1000  # objects per list request

    def __init__(self, uri: str, *, retry: RetryPolicy | None = None, timeout: float = 120.0,
                 connect_timeout: float = 10.0) -> None:
        bucket, prefix = parse_supabase_uri(uri)
        super().__init__(f"supabase://{bucket}/{prefix}" if prefix else f"supabase://{bucket}")
        self.bucket = bucket
        self.prefix = prefix
        self.retry = retry or default_policy()
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.resumable = ResumableUploads(self.uri)
        self._endpoint: str | None = None
        self._key: str | None = None
        self._storage: Any = None
        self._http: Any = None
        self._session: Any = None
        self._bucket_checked = False

    # ---- plumbing ------------------------------------------------------------------------------------------

    @property
    def display_name(self) -> str:
        endpoint = storage_endpoint()
        return f"{self._root_uri} at {mask_url(endpoint)}" if endpoint else self._root_uri

    def _connect(self) -> None:
        if self._storage is not None:
            return
        endpoint = storage_endpoint()
        _, key = first_env(SUPABASE_KEY_ENVS)
        if endpoint is None or key is None:
            missing = [SUPABASE_URL_ENV] if endpoint is None else []
            missing += [" or ".join(SUPABASE_KEY_ENVS)] if key is None else []
            raise ArtifactError(f"{self._root_uri}: {' and '.join(missing)} not set", CREDENTIALS_HINT)
        import httpx
        from storage3 import SyncStorageClient

        self._endpoint, self._key = endpoint, key
        self._http = httpx.Client(timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
                                  follow_redirects=True)
        self._storage = SyncStorageClient(f"{endpoint}/", self._auth_headers(), http_client=self._http)

    def _auth_headers(self) -> dict[str, str]:
        assert self._key is not None
        return {"apikey": self._key, "Authorization": f"Bearer {self._key}"}

    @property
    def _files(self) -> Any:
        self._connect()
        return self._storage.from_(self.bucket)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._session is not None:
            self._session.close()

    def _object_name(self, sha256: str) -> str:
        return f"{self.prefix}/{object_key(sha256)}" if self.prefix else object_key(sha256)

    def _call(self, stage: str, action: Callable[[], T]) -> T:
        """Run one storage3/httpx call with retries; failures become ``_ServerError`` (or pass through)."""
        from storage3.exceptions import StorageApiError

        import httpx

        def attempt() -> T:
            try:
                return action()
            except StorageApiError as error:
                code, message = str(error.code or ""), str(error.message or "")
                if code == "InternalError" and message.startswith(_UNPARSED):  # not JSON: a gateway's own page
                    code, message = "", " ".join(message[len(_UNPARSED):].split())[:200]
                cause: BaseException | None = error
                while cause is not None and not isinstance(cause, httpx.HTTPStatusError):
                    cause = cause.__cause__ or cause.__context__
                http_status, url = (cause.response.status_code, str(cause.request.url)) if cause else (None, None)
                failure = _ServerError(_status_of(error.status), code, message, stage=stage,
                                       http_status=http_status, url=url)
                if failure.route_missing:
                    raise self._wrong_endpoint(failure) from None
                raise failure from None

        return call_with_retries(attempt, retryable=self._transient, policy=self.retry, on_retry=self._waiting)

    @staticmethod
    def _transient(error: BaseException) -> bool:
        import httpx
        import requests

        if isinstance(error, _ServerError):
            return is_retryable_status(error.status) or (error.stage == "patch" and error.status == 409)
        return isinstance(error, (httpx.TransportError, requests.exceptions.RequestException))

    def _waiting(self, error: BaseException, pause: float, seconds_left: float) -> None:
        """The progress line while a retry waits."""
        if self.retry.notify is None:
            return
        if isinstance(error, _ServerError):
            reason = f"the server answered {error.status}" + (f" {error.error}" if error.error else "")
        else:
            reason = f"the server did not answer ({type(error).__name__})"
        self.retry.notify(retry_line(self.display_name, reason, seconds_left))

    def _wrong_endpoint(self, error: _ServerError) -> ArtifactError:
        """A route 404: the URL is not a Storage API. Saying "no such object" or listing nothing would hide that."""
        detail = mask_secrets(" ".join(f"{error.error}: {error.message}".strip(": ").split()))[:160]
        return ArtifactError(
            f"{self._root_uri}: no Supabase Storage API at {mask_url(self._endpoint or '')} (it answered HTTP 404 "
            f"for {mask_url(error.url or '')}" + (f": {detail})" if detail else ")"),
            f"{SUPABASE_URL_ENV} is the project URL (https://<ref>.supabase.co; the Storage API is its /storage/v1); "
            f"to use a Storage API at another URL (a self-hosted server serves it at /), set "
            f"{SUPABASE_STORAGE_URL_ENV} to that URL")

    def _size_limit(self, action: str, detail: str, size: int | None) -> ArtifactError:
        """413: over the bucket's file size limit when it has one that small, else over the project's."""
        shown = f" ({size / MB:.1f} MB)" if size is not None else ""
        limit = None
        try:
            limit = _status_of((self._storage.get_bucket(self.bucket).file_size_limit))
        except Exception:  # noqa: BLE001 - only to word the message; the 413 itself is what counts
            pass
        if limit and (size is None or size > limit):
            return ArtifactError(
                f"{self.display_name}: could not {action}{shown}: it is over the file size limit of bucket "
                f"{self.bucket!r} ({limit / MB:.1f} MB; {detail})",
                f"raise the bucket's file size limit in the project's Storage settings (it cannot exceed the "
                f"project's upload limit: {FREE_PLAN_LIMIT_MB} MB on the Free plan), or keep checkpoints in an "
                "s3:// store (Cloudflare R2, MinIO, AWS) with --store or ORCHESTRATOR_STORE")
        return ArtifactError(f"{self.display_name}: could not {action}{shown}: it is over the project's per-file "
                             f"upload size limit ({detail})", SIZE_LIMIT_HINT)

    def _fail(self, action: str, error: BaseException, *, size: int | None = None) -> ArtifactError:
        """One line naming the store, the real status and what to do; secrets masked."""
        import httpx
        import requests

        if isinstance(error, ArtifactError):  # already one line (a wrong endpoint)
            return error
        if isinstance(error, _ServerError):
            detail = mask_secrets(f"{error.status} {error.error}: {error.message}".replace(" :", ":"))
            if error.status in (401, 403) or error.error in ("InvalidJWT", "Unauthorized", "AccessDenied"):
                return ArtifactError(f"{self.display_name}: the server refused the credentials while trying to "
                                     f"{action} ({detail})", CREDENTIALS_HINT)
            if error.status == 413 or error.error in ("EntityTooLarge", "Payload too large"):
                return self._size_limit(action, detail, size)
            if not (error.error or error.message) and error.stage in _TUS_STAGES:  # HEAD answers carry no body
                return ArtifactError(
                    f"{self.display_name}: could not {action}: the server answered {error.status} with no details "
                    f"while {_TUS_STAGES[error.stage]}",
                    "a server or gateway failure: running it again resumes the upload from what the server has"
                    if is_retryable_status(error.status) else STORE_FAILURE_HINT)
            return ArtifactError(f"{self.display_name}: could not {action} ({detail})", STORE_FAILURE_HINT)
        if isinstance(error, (httpx.TransportError, requests.exceptions.RequestException)):
            detail = mask_secrets(" ".join(str(error).split()))
            return ArtifactError(f"{self.display_name}: could not {action}: the server did not answer "
                                 f"({type(error).__name__}: {detail})",
                                 "check SUPABASE_URL and the network; an interrupted upload resumes when run again")
        detail = mask_secrets(" ".join(str(error).split()))
        return ArtifactError(f"{self.display_name}: could not {action} ({type(error).__name__}: {detail})",
                             STORE_FAILURE_HINT)

    def _ensure_bucket(self) -> None:
        if self._bucket_checked:
            return
        self._connect()
        storage = self._storage
        try:
            self._call("bucket", lambda: storage.get_bucket(self.bucket))
        except _ServerError as error:
            if error.status != 404:
                raise self._fail(f"check bucket {self.bucket!r}", error) from None
            try:
                self._call("bucket", lambda: storage.create_bucket(self.bucket, options={"public": False}))
            except _ServerError as create_error:
                if create_error.status != 409:  # created meanwhile by someone else
                    raise self._fail(f"create bucket {self.bucket!r}", create_error) from None
        except Exception as error:  # noqa: BLE001 - every failure leaves as one masked line
            raise self._fail(f"check bucket {self.bucket!r}", error) from None
        self._bucket_checked = True

    # ---- the store interface -------------------------------------------------------------------------------

    def _info(self, sha256: str) -> dict[str, Any] | None:
        files = self._files
        try:
            return self._call("info", lambda: files.info(self._object_name(sha256)))
        except _ServerError as error:
            if error.status == 404:  # no such object (or no bucket yet)
                return None
            raise self._fail("look up an object", error) from None
        except ArtifactError:
            raise
        except Exception as error:  # noqa: BLE001
            raise self._fail("look up an object", error) from None

    def exists(self, sha256: str) -> bool:
        info = self._info(sha256)
        return info is not None and (info.get("metadata") or {}).get("sha256") == sha256

    def _upload(self, path: Path, sha256: str, size: int, progress: Reporter) -> None:
        self._ensure_bucket()
        try:
            if size <= STANDARD_UPLOAD_MAX:
                self._upload_standard(path, sha256)
                progress(size, size)
            else:
                self._upload_resumable(path, sha256, size, progress)
        except ArtifactError:
            raise
        except _ServerError as error:
            if error.status == 409 and self.exists(sha256):  # stored meanwhile by another process
                return
            raise self._fail(f"upload {path.name}", error, size=size) from None
        except Exception as error:  # noqa: BLE001
            raise self._fail(f"upload {path.name}", error, size=size) from None

    def _upload_standard(self, path: Path, sha256: str) -> None:
        """One multipart POST through storage3 (option values are strings, as storage3 requires)."""
        files = self._files
        options = {"content-type": CONTENT_TYPE, "cache-control": CACHE_SECONDS, "upsert": "true",
                   "metadata": {"sha256": sha256}}
        self._call("upload", lambda: files.upload(self._object_name(sha256), path, options))

    # -- TUS --

    def _transfer_session(self) -> Any:
        """One requests session (kept-alive connections) for the bulk transfers: TUS chunks and downloads."""
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def _tus_uploader(self, stream: IO[bytes], url: str | None, sha256: str) -> Any:
        from tusclient.client import TusClient

        headers = {**self._auth_headers(), "x-upsert": "true"}
        client = TusClient(f"{self._endpoint}/upload/resumable", headers=headers)
        metadata = {"bucketName": self.bucket, "objectName": self._object_name(sha256), "contentType": CONTENT_TYPE,
                    "cacheControl": CACHE_SECONDS, "metadata": json.dumps({"sha256": sha256})}
        return _TimedUploader(file_stream=stream, url=url, client=client, chunk_size=TUS_CHUNK, metadata=metadata,
                              retries=0, session=self._transfer_session(),
                              timeout=(self.connect_timeout, self.timeout))

    def _upload_resumable(self, path: Path, sha256: str, size: int, progress: Reporter) -> None:
        from tusclient.exceptions import TusCommunicationError

        def server_error(error: TusCommunicationError, stage: str) -> Exception:
            if error.status_code is None:  # no answer: the request failed on the way
                cause = error.__cause__ or error.__context__
                import requests

                return cause if isinstance(cause, requests.exceptions.RequestException) else \
                    requests.exceptions.ConnectionError(str(error))
            return _parse_error_body(error.status_code, error.response_content, stage=stage)

        stale: set[str] = set()  # saved URLs the server no longer takes: replaced once a new upload exists

        with open(path, "rb") as stream:

            def attempt() -> None:
                saved = self.resumable.get(sha256)
                if saved in stale:
                    saved = None
                stage = "head" if saved else "create"
                try:
                    try:
                        uploader = self._tus_uploader(stream, saved, sha256)  # HEAD when resuming
                    except TusCommunicationError as error:
                        if not (saved and _resume_refused(error)):
                            raise
                        stale.add(saved)  # expired, unknown or malformed (400 InvalidUploadId): start over
                        stage = "create"
                        uploader = self._tus_uploader(stream, None, sha256)
                    if uploader.url is None:
                        uploader.set_url(uploader.create_url())
                        uploader.offset = 0
                        self.resumable.put(sha256, uploader.url)
                    stage = "patch"
                    progress(uploader.offset, size)
                    while uploader.offset < size:
                        uploader.upload_chunk()
                        progress(uploader.offset, size)
                except TusCommunicationError as error:
                    raise server_error(error, stage) from None

            def progressed() -> bool:
                moved = progress.done > high_water[0]
                high_water[0] = max(high_water[0], progress.done)
                return moved

            high_water = [0]
            call_with_retries(attempt, retryable=self._transient, policy=self.retry, progressed=progressed,
                              on_retry=self._waiting)
        self.resumable.remove(sha256)

    # -- download, list, delete, sign --

    def _download(self, sha256: str, dest: Path, progress: Reporter) -> str:
        """Stream the object to dest, hashing as it goes; a dropped transfer resumes with a Range request."""
        self._connect()
        url = f"{self._endpoint}/object/{quote(self.bucket)}/{quote(self._object_name(sha256))}"
        session = self._transfer_session()

        def attempt() -> str:
            have = dest.stat().st_size if dest.exists() else 0
            headers = self._auth_headers()
            if have:
                headers["Range"] = f"bytes={have}-"
            with session.get(url, headers=headers, stream=True,
                             timeout=(self.connect_timeout, self.timeout)) as response:
                if response.status_code >= 400:
                    failure = _parse_error_body(response.status_code, response.content, stage="download", url=url)
                    raise self._wrong_endpoint(failure) if failure.route_missing else failure
                if response.status_code != 206:
                    have = 0
                    progress.restart()
                with Sha256OnThread(pending=4) as digest:  # hashing overlaps the socket reads and file writes
                    if have:
                        with open(dest, "rb") as done:  # the part that arrived before the drop
                            while block := done.read(4 * MB):
                                digest.update(block)
                    expected = response.headers.get("content-length")
                    progress(have, have + int(expected) if expected is not None else None)
                    received = 0
                    with open(dest, "ab" if have else "wb") as out:
                        for chunk in response.iter_content(MB):  # small enough that a drop loses little
                            out.write(chunk)
                            digest.update(chunk)
                            received += len(chunk)
                            progress.advance(len(chunk))
                    if expected is not None and received != int(expected):
                        import requests

                        raise requests.exceptions.ChunkedEncodingError(
                            f"connection closed after {received} of {expected} bytes")
                    return digest.hexdigest()

        try:
            return call_with_retries(attempt, retryable=self._transient, policy=self.retry, on_retry=self._waiting)
        except _ServerError as error:
            if error.status == 404:
                raise self.not_found(sha256) from None
            raise self._fail(f"download {sha256[:12]}…", error) from None
        except Exception as error:  # noqa: BLE001
            raise self._fail(f"download {sha256[:12]}…", error) from None

    def signed_url(self, uri: str, *, expires: int = 3600) -> str:
        sha256 = sha256_from_uri(uri)
        files = self._files
        try:
            signed = self._call("sign", lambda: files.create_signed_url(self._object_name(sha256), int(expires)))
        except _ServerError as error:
            if error.status == 404:
                raise self.not_found(sha256) from None
            raise self._fail("sign a URL", error) from None
        except Exception as error:  # noqa: BLE001
            raise self._fail("sign a URL", error) from None
        url = signed.get("signedURL") or signed.get("signedUrl")
        if not url:
            raise ArtifactError(f"{self.display_name}: the server returned no signed URL for {sha256[:12]}…",
                                STORE_FAILURE_HINT)
        return url

    def _list_folder(self, folder: str) -> Iterator[dict[str, Any]]:
        files = self._files
        offset, limit = 0, self.list_page
        while True:
            page = self._call("list", lambda: files.list(folder, {"limit": limit, "offset": offset,
                                                                   "sortBy": {"column": "name", "order": "asc"}}))
            yield from page
            if len(page) < limit:
                return
            offset += limit

    def list(self) -> Iterator[Artifact]:
        root = f"{self.prefix}/sha256" if self.prefix else "sha256"
        try:
            for fan in list(self._list_folder(root)):
                name = fan.get("name", "")
                if fan.get("id") is not None or len(name) != 2:
                    continue
                for item in self._list_folder(f"{root}/{name}"):
                    sha256 = item.get("name", "")
                    if item.get("id") is not None and is_sha256(sha256) and sha256[:2] == name:
                        size = int((item.get("metadata") or {}).get("size") or 0)
                        yield Artifact(uri=self.uri_for(sha256), sha256=sha256, size=size)
        except _ServerError as error:
            if error.status == 404:
                return
            raise self._fail("list objects", error) from None
        except ArtifactError:
            raise
        except Exception as error:  # noqa: BLE001
            raise self._fail("list objects", error) from None

    def delete(self, sha256: str) -> None:
        files = self._files
        try:
            self._call("delete", lambda: files.remove([self._object_name(sha256)]))
        except _ServerError as error:
            if error.status != 404:
                raise self._fail("delete an object", error) from None
        except Exception as error:  # noqa: BLE001
            raise self._fail("delete an object", error) from None
        self.resumable.remove(sha256)


def _resume_refused(error: Any) -> bool:
    """Whether the server's answer to the resume HEAD says the saved upload URL is of no use: any 4xx but an
    authentication error (which a new upload would get too) or a transient one (408, 429)."""
    if error.status_code is None:  # no answer at all: the network, not the URL
        return False
    answer = _parse_error_body(error.status_code, error.response_content, stage="head")
    status = answer.status or 0
    return (400 <= status < 500 and status not in (401, 403) and not is_retryable_status(status)
            and answer.error not in ("InvalidJWT", "Unauthorized", "AccessDenied"))


def _make_timed_uploader() -> type:
    """tuspy's Uploader, sending its requests through one session with timeouts (tuspy sets none)."""
    from urllib.parse import urljoin

    import requests
    from tusclient.exceptions import TusCommunicationError, TusUploadFailed
    from tusclient.request import TusRequest
    from tusclient.uploader import Uploader

    class TimedTusRequest(TusRequest):
        def __init__(self, uploader: Any) -> None:
            super().__init__(uploader)
            self._session = uploader.session
            self._timeout = uploader.timeout

        def perform(self) -> None:
            try:
                chunk = self.file.read(self._content_length)
                self.add_checksum(chunk)
                response = self._session.patch(self._url, data=chunk, headers=self._request_headers,
                                               timeout=self._timeout)
                self.status_code = response.status_code
                self.response_content = response.content
                self.response_headers = {k.lower(): v for k, v in response.headers.items()}
            except requests.exceptions.RequestException as error:
                raise TusUploadFailed(error) from error

    class TimedUploader(Uploader):
        def __init__(self, *args: Any, session: Any, timeout: Any, **kwargs: Any) -> None:
            self.session = session
            self.timeout = timeout
            super().__init__(*args, **kwargs)

        def get_offset(self) -> int:
            try:
                response = self.session.head(self.url, headers=self.get_headers(), timeout=self.timeout)
            except requests.exceptions.RequestException as error:
                raise TusCommunicationError(error) from error
            offset = response.headers.get("upload-offset")
            if response.status_code >= 300 or offset is None:
                raise TusCommunicationError(f"HEAD of the upload answered {response.status_code}",
                                            response.status_code, response.content)
            return int(offset)

        def create_url(self) -> str:
            try:
                response = self.session.post(self.client.url, headers=self.get_url_creation_headers(),
                                             timeout=self.timeout)
            except requests.exceptions.RequestException as error:
                raise TusCommunicationError(error) from error
            location = response.headers.get("location")
            if response.status_code >= 300 or location is None:
                raise TusCommunicationError(f"creating the upload answered {response.status_code}",
                                            response.status_code, response.content)
            return urljoin(self.client.url, location)

        def _do_request(self) -> None:  # one try: retries are the store's, with backoff, transient errors only
            self.request = TimedTusRequest(self)
            self.request.perform()
            if not 200 <= self.request.status_code < 300:
                raise TusUploadFailed("", self.request.status_code, self.request.response_content)
            if self.request.response_headers.get("upload-offset") is None:
                raise TusUploadFailed("PATCH answered without Upload-Offset", self.request.status_code,
                                      self.request.response_content)

    return TimedUploader


class _LazyUploader:
    """Builds the tuspy subclass on first use (tuspy is imported only when a supabase:// store uploads)."""

    cls: type | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _LazyUploader.cls is None:
            _LazyUploader.cls = _make_timed_uploader()
        return _LazyUploader.cls(*args, **kwargs)


_TimedUploader = _LazyUploader()
