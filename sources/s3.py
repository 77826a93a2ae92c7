"""S3 access with boto3: ``s3://bucket/prefix`` URLs, honouring AWS_ENDPOINT_URL.

boto3 >= 1.36 sends CRC checksums on every PUT by default; S3-compatible servers such as
S3Proxy reject the unknown header, so checksums are only sent when an operation requires them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from sources.cli import UserError


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``) without slashes at the ends."""
    if not url.startswith("s3://"):
        raise UserError(f"{url!r} is not an s3://bucket/prefix URL")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise UserError(f"{url!r} has no bucket name")
    return bucket, prefix.strip("/")


def client(endpoint_url: str | None = None):
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    config = Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)


def describe_error(exc: BaseException, what: str) -> str:
    """One line for a botocore/boto3 failure."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return f"{what}: no AWS credentials (set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile)"
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{what}: {err.get('Code', '?')}: {err.get('Message', str(exc))}"
    return f"{what}: {exc}"


def list_keys(s3, bucket: str, prefix: str) -> list[str]:
    keys = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def iter_lines(s3, bucket: str, key: str) -> Iterator[bytes]:
    """The lines of an object, streamed (no trailing newline)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    rest = b""
    try:
        # our own split over big chunks: botocore's iter_lines is several times slower
        for chunk in body.iter_chunks(4 << 20):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            yield from lines
        if rest:
            yield rest
    finally:
        body.close()


def read_bytes(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def ensure_bucket(s3, bucket: str) -> bool:
    """Create the bucket when missing. True when it was created."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
    region = s3.meta.region_name
    if region and region != "us-east-1":
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    else:
        s3.create_bucket(Bucket=bucket)
    return True
