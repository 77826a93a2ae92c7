"""Print a topic's records as they are committed: ``python -m deploy.local.tail dispatch [-n 20]``."""

from __future__ import annotations

import argparse
import os
import sys

from deploy.local.common import fail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.tail", description=__doc__)
    parser.add_argument("topic", help="topic to read, e.g. dispatch, site-costs, dead-letter, pipeline-metrics")
    parser.add_argument("-n", "--last", type=int, default=10, help="start this many records before the end")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--topic-prefix", default=os.environ.get("GRD_TOPIC_PREFIX", ""),
                        help="prefix of every topic name (env GRD_TOPIC_PREFIX, as the job, sources and page)")
    args = parser.parse_args(argv)
    topic = args.topic_prefix + args.topic
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, isolation_level="read_committed",
                                 enable_auto_commit=False)
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            fail(f"no topic {topic!r} on {args.bootstrap} (make topics?)")
        consumer.assign(partitions)
        for tp, end in consumer.end_offsets(partitions).items():
            consumer.seek(tp, max(0, end - args.last))
        for msg in consumer:
            print(msg.value.decode("utf-8", errors="replace"), flush=True)
    except KafkaError as exc:
        fail(f"cannot read {topic!r} from {args.bootstrap}: {exc}")
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
