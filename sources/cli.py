"""Command-line plumbing shared by the sources entry points: one clear line and exit code 2 for
user mistakes, no traceback."""

from __future__ import annotations

import argparse
import os
import sys

from udfs.timeutil import parse_ts_ms

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


class UserError(Exception):
    """A mistake the user fixes (bad flag value, unreadable file): printed as one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse that prints a single ``prog: error: ...`` line (no usage block) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def raise_interrupt(signum: int, frame: object) -> None:
    """Signal handler: stop the way Ctrl-C does (``KeyboardInterrupt``), so SIGTERM also flushes
    what was handed to the producer and prints the summary."""
    raise KeyboardInterrupt


def fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def default_bootstrap() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP


def ts_arg(value: str) -> int:
    """argparse type: ISO-8601 UTC (``2018-07-01T00:00:00Z``, a bare date, or epoch ms) -> epoch ms."""
    text = value.strip()
    if text.isdigit():
        return int(text)
    if len(text) == 10:  # a bare date means midnight UTC
        text += "T00:00:00Z"
    try:
        return parse_ts_ms(text, "time")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO-8601 UTC time like 2018-07-01T00:00:00Z ({exc})"
        ) from None


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be > 0")
    return number


def non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be >= 0")
    return number


def probability(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a probability in [0, 1]")
    return number


def csv_list(value: str) -> list[str]:
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("empty list")
    return items


def add_kafka_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap",
        default=default_bootstrap(),
        help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP, default %(default)s)",
    )
    parser.add_argument(
        "--topic-prefix",
        default=os.environ.get("GRD_TOPIC_PREFIX", ""),
        help="prefix for every topic name (env GRD_TOPIC_PREFIX, as the job and the page; tests use a unique one)",
    )
    parser.add_argument(
        "--producer",
        choices=["auto", "kafka-python", "confluent"],
        default="auto",
        help="Kafka client: auto = confluent-kafka when installed (faster), else kafka-python",
    )
