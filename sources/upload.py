"""Upload the sample data set to S3 with boto3 (AWS_ENDPOINT_URL honoured); creates the bucket.

python -m sources.upload --bucket geodispatch --prefix sample [--source data/sample]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sources import s3
from sources.cli import Parser, UserError, fail
from sources.sample_data import SAMPLE_DIR


def upload_dir(source: Path, bucket: str, prefix: str, endpoint_url: str | None = None) -> list[tuple[str, int]]:
    """Upload every regular file of ``source`` (not recursive) to ``s3://bucket/prefix/<name>``."""
    if not source.is_dir():
        raise UserError(f"{source}: not a folder (build it with `make sample-data`)")
    files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.endswith(".part"))
    if not any(p.name == "manifest.json" for p in files):
        raise UserError(f"{source}: no manifest.json (build it with `make sample-data`)")
    from boto3.s3.transfer import TransferConfig

    client = s3.client(endpoint_url)
    s3.ensure_bucket(client, bucket)
    # one PUT up to 64 MB (the sample is ~40 MB): fewer round trips than 8 MB multipart parts
    transfer = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=16 << 20)
    done = []
    # manifest last: a reader that sees it can rely on the data files being there
    for path in sorted(files, key=lambda p: p.name == "manifest.json"):
        key = f"{prefix.strip('/')}/{path.name}" if prefix.strip("/") else path.name
        client.upload_file(str(path), bucket, key, Config=transfer)
        done.append((key, path.stat().st_size))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m sources.upload", description="Upload data/sample to s3://BUCKET/PREFIX.")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="sample")
    parser.add_argument("--source", type=Path, default=SAMPLE_DIR, help="folder to upload (default %(default)s)")
    parser.add_argument("--endpoint-url", default=None, help="S3 endpoint (default env AWS_ENDPOINT_URL, else AWS)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        done = upload_dir(args.source, args.bucket, args.prefix, args.endpoint_url)
    except UserError as exc:
        fail(str(exc))
    except Exception as exc:  # botocore errors and connection failures: one line
        if type(exc).__module__.split(".")[0] in ("botocore", "boto3", "urllib3", "s3transfer"):
            fail(s3.describe_error(exc, f"upload to s3://{args.bucket}/{args.prefix}"))
        raise
    total = sum(size for _, size in done)
    print(
        f"uploaded {len(done)} files ({total / 1e6:.1f} MB) to s3://{args.bucket}/{args.prefix.strip('/')} "
        f"in {time.monotonic() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
