"""s3:// — any S3-compatible endpoint through boto3: AWS, MinIO, Cloudflare R2, Supabase's /storage/v1/s3.

``s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION&checksum=when_required&addressing=path]``

- ``endpoint``: the server (default: AWS); ``region``: default ``$AWS_REGION``/``$AWS_DEFAULT_REGION``/us-east-1.
- ``checksum``: ``when_supported`` (boto3's default: CRC checksums on every upload) or ``when_required`` for servers
  that reject them (older MinIO, R2 with some clients, Supabase's S3 endpoint).
- ``addressing``: ``path`` (default: ``endpoint/bucket/key``, works everywhere) or ``virtual``.

Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, …),
never from the URI. Objects carry their sha256 as ``x-amz-meta-sha256``; ``exists`` checks it. Large files go up
and down in parallel multipart parts. Retries (timeouts, dropped connections, 5xx, 408, 429, SlowDown) follow the
store's :class:`~orchestrator.artifacts.retry.RetryPolicy`, per request, so a multipart transfer retries a part,
not the whole file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from orchestrator.artifacts.base import (
    STORE_FAILURE_HINT,
    Artifact,
    ArtifactError,
    ArtifactStore,
    is_sha256,
    object_key,
    sha256_from_uri,
)
from orchestrator.artifacts.credentials import check_store_uri, mask_secrets
from orchestrator.artifacts.progress import Reporter
from orchestrator.artifacts.retry import RetryPolicy, default_policy, is_retryable_status, retry_line

OPTIONS = ("endpoint", "region", "checksum", "addressing")
CHECKSUM_MODES = ("when_supported", "when_required")
ADDRESSING_STYLES = ("path", "virtual", "auto")
CREDENTIALS_HINT = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment for this "
                    "endpoint; for Supabase's S3 endpoint use the S3 access keys from the project's Storage settings")
_AUTH_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken",
                         "InvalidToken", "AuthorizationHeaderMalformed", "InvalidSecurity", "Forbidden", "403",
                         "Unauthorized", "InvalidSignature"})
_RETRYABLE_CODES = frozenset({"SlowDown", "RequestTimeout", "RequestTimeoutException", "Throttling",
                              "ThrottlingException", "InternalError", "ServiceUnavailable", "PriorRequestNotComplete"})
MB = 1024 * 1024


def parse_s3_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """(bucket, prefix, options) of an s3:// URI; unknown options are refused."""
    check_store_uri(uri, hint=CREDENTIALS_HINT)
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ArtifactError(f"{uri!r} is not an s3:// store URI", "use s3://BUCKET/PREFIX?endpoint=URL&region=REGION")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ArtifactError(f"{parts.scheme}://{parts.netloc}{parts.path}: unknown option(s) {', '.join(unknown)}",
                            f"known options: {', '.join(OPTIONS)}")
    if options.get("checksum", "when_supported") not in CHECKSUM_MODES:
        raise ArtifactError(f"s3 option checksum={options['checksum']!r} is not one of {', '.join(CHECKSUM_MODES)}",
                            "checksum=when_required suits S3-compatible stores that reject the newer checksums")
    if options.get("addressing", "path") not in ADDRESSING_STYLES:
        raise ArtifactError(f"s3 option addressing={options['addressing']!r} is not one of "
                            f"{', '.join(ADDRESSING_STYLES)}", "leave it out for path-style addressing")
    return parts.netloc, unquote(parts.path).strip("/"), options


def canonical_s3_uri(bucket: str, prefix: str, options: dict[str, str]) -> str:
    query = "&".join(f"{name}={quote(options[name], safe=':/')}" for name in OPTIONS if options.get(name))
    path = f"/{prefix}" if prefix else ""
    return f"s3://{bucket}{path}" + (f"?{query}" if query else "")


class S3Store(ArtifactStore):
    scheme = "s3"

    def __init__(self, uri: str, *, retry: RetryPolicy | None = None, upload_part_size: int = 8 * MB,
                 download_part_size: int = 32 * MB, max_concurrency: int = 10) -> None:
        bucket, prefix, options = parse_s3_uri(uri)
        super().__init__(canonical_s3_uri(bucket, prefix, options))
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = options.get("endpoint") or None
        self.region = (options.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                       or "us-east-1")
        self.checksum = options.get("checksum", "when_supported")
        self.addressing = options.get("addressing", "path")
        self.retry = retry or default_policy()
        self.upload_part_size = upload_part_size  # S3's parts are 5 MB at least; 8 MB is boto3's and AWS's choice
        self.download_part_size = download_part_size  # fewer, larger ranged GETs read faster (3x on moto's server)
        self.max_concurrency = max_concurrency
        self._client_obj: Any = None
        self._bucket_checked = False

    # ---- plumbing ------------------------------------------------------------------------------------------

    @property
    def display_name(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"{self._root_uri}{where}"

    @property
    def _client(self) -> Any:
        if self._client_obj is None:
            import boto3
            from botocore.config import Config

            config = Config(
                s3={"addressing_style": self.addressing},
                signature_version="s3v4",
                retries={"mode": "standard", "total_max_attempts": 1},  # our policy decides (see _needs_retry)
                connect_timeout=10,
                read_timeout=60,
                request_checksum_calculation=self.checksum,
                response_checksum_validation=self.checksum,
                max_pool_connections=max(10, self.max_concurrency * 2),
            )
            client = boto3.session.Session().client("s3", endpoint_url=self.endpoint, region_name=self.region,
                                                    config=config)
            client.meta.events.register("needs-retry.s3", self._needs_retry)
            self._client_obj = client
        return self._client_obj

    def _needs_retry(self, response=None, attempts: int = 1, caught_exception=None, request_dict=None,
                     **_: Any) -> float | None:
        """botocore's retry hook: the seconds to sleep before another attempt, or None to stop."""
        if caught_exception is not None:
            from botocore.exceptions import ConnectionError as BotoConnectionError
            from botocore.exceptions import HTTPClientError

            if not isinstance(caught_exception, (BotoConnectionError, HTTPClientError)):
                return None
        elif response is not None:
            http, parsed = response
            code = (parsed or {}).get("Error", {}).get("Code", "")
            if not (is_retryable_status(http.status_code) or code in _RETRYABLE_CODES):
                return None
        else:
            return None
        context = (request_dict or {}).setdefault("context", {})
        started = context.setdefault("orchestrator_retry_started", self.retry.clock())
        elapsed = self.retry.clock() - started
        pause = self.retry.next_pause(attempts, elapsed)
        if pause is not None and self.retry.notify is not None:
            reason = (f"the server did not answer ({type(caught_exception).__name__})" if caught_exception is not None
                      else f"the server answered {response[0].status_code}")
            self.retry.notify(retry_line(self.display_name, reason, self.retry.deadline - elapsed))
        return pause

    def _transfer_config(self, part_size: int):
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size,
                              max_concurrency=self.max_concurrency, use_threads=True)

    def _key(self, sha256: str) -> str:
        return f"{self.prefix}/{object_key(sha256)}" if self.prefix else object_key(sha256)

    def _error(self, action: str, error: BaseException) -> ArtifactError:
        """One-line error naming the store; credentials and signatures masked."""
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        cause = error
        while not isinstance(cause, ClientError) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, ClientError):
            info = cause.response.get("Error", {})
            code = str(info.get("Code", ""))
            status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            shown_code = "" if code in ("", str(status)) else f" {code}"  # a HEAD has no body: the code is the status
            detail = mask_secrets(f"{status}{shown_code}: {info.get('Message') or 'no message'}")
            if code in _AUTH_CODES or status in (401, 403):
                return ArtifactError(f"{self.display_name}: the server refused the credentials while trying to "
                                     f"{action} ({detail})", CREDENTIALS_HINT)
            if code == "NoSuchBucket":
                return ArtifactError(f"{self.display_name}: bucket {self.bucket!r} does not exist ({detail})",
                                     "put a file to create it, or check the bucket name and endpoint")
            return ArtifactError(f"{self.display_name}: could not {action} ({detail})", STORE_FAILURE_HINT)
        if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
            return ArtifactError(f"{self.display_name}: no S3 credentials found to {action}", CREDENTIALS_HINT)
        if isinstance(error, EndpointConnectionError):
            return ArtifactError(f"{self.display_name}: cannot reach the endpoint to {action}",
                                 "check the endpoint= option of the store URI and the network")
        detail = mask_secrets(" ".join(str(error).split()))
        return ArtifactError(f"{self.display_name}: could not {action} ({type(error).__name__}: {detail})",
                             STORE_FAILURE_HINT)

    def _head(self, sha256: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self._client.head_object(Bucket=self.bucket, Key=self._key(sha256))
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = error.response.get("Error", {}).get("Code")
            if status == 404 or code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                return None
            raise self._error("look up an object", error) from None
        except Exception as error:  # noqa: BLE001 - every failure leaves as one masked line
            raise self._error("look up an object", error) from None

    def _ensure_bucket(self) -> None:
        if self._bucket_checked:
            return
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 403:  # keys scoped to objects (R2, IAM policies) may not see the bucket: let the upload tell
                self._bucket_checked = True
                return
            if status != 404:
                raise self._error("check the bucket", error) from None
            try:
                args: dict[str, Any] = {"Bucket": self.bucket}
                if self.region != "us-east-1":
                    args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
                self._client.create_bucket(**args)
            except ClientError as create_error:
                if create_error.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou",
                                                                             "BucketAlreadyExists"):
                    raise self._error(f"create bucket {self.bucket!r}", create_error) from None
        except Exception as error:  # noqa: BLE001
            raise self._error("check the bucket", error) from None
        self._bucket_checked = True

    # ---- the store interface -------------------------------------------------------------------------------

    def exists(self, sha256: str) -> bool:
        head = self._head(sha256)
        return head is not None and head.get("Metadata", {}).get("sha256") == sha256

    def _upload(self, path: Path, sha256: str, size: int, progress: Reporter) -> None:
        self._ensure_bucket()
        try:
            self._client.upload_file(
                str(path), self.bucket, self._key(sha256),
                ExtraArgs={"Metadata": {"sha256": sha256}, "ContentType": "application/octet-stream"},
                Callback=progress.advance, Config=self._transfer_config(self.upload_part_size),
            )
        except Exception as error:  # noqa: BLE001
            raise self._error(f"upload {path.name}", error) from None

    def _download(self, sha256: str, dest: Path, progress: Reporter) -> None:
        head = self._head(sha256)
        if head is None:
            raise self.not_found(sha256)
        progress(0, int(head.get("ContentLength", 0)))
        try:
            self._client.download_file(self.bucket, self._key(sha256), str(dest), Callback=progress.advance,
                                       Config=self._transfer_config(self.download_part_size))
        except Exception as error:  # noqa: BLE001
            raise self._error(f"download {sha256[:12]}…", error) from None

    def signed_url(self, uri: str, *, expires: int = 3600) -> str:
        """A presigned GET URL (the signature, not the secret key, is in it)."""
        sha256 = sha256_from_uri(uri)
        if self._head(sha256) is None:
            raise self.not_found(sha256)
        try:
            return self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key(sha256)}, ExpiresIn=int(expires))
        except Exception as error:  # noqa: BLE001
            raise self._error("sign a URL", error) from None

    def list(self) -> Iterator[Artifact]:
        root = f"{self.prefix}/sha256/" if self.prefix else "sha256/"
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=root)
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(root):]
                    fan, _, sha256 = name.partition("/")
                    if is_sha256(sha256) and fan == sha256[:2]:
                        yield Artifact(uri=self.uri_for(sha256), sha256=sha256, size=int(item["Size"]))
        except ArtifactError:
            raise
        except Exception as error:  # noqa: BLE001
            from botocore.exceptions import ClientError

            if isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return  # nothing stored yet
            raise self._error("list objects", error) from None

    def delete(self, sha256: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(sha256))
        except Exception as error:  # noqa: BLE001
            from botocore.exceptions import ClientError

            if isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return
            raise self._error("delete an object", error) from None
