"""Topic names of ../shared/CONTRACT.md, the single place every component reads them from."""

PRICES = "prices"
WEATHER = "weather"
SITE_STATUS = "site-status"
JOBS = "jobs"
SITE_COSTS = "site-costs"
DISPATCH = "dispatch"
DEAD_LETTER = "dead-letter"
PIPELINE_METRICS = "pipeline-metrics"

INPUT_TOPICS = (PRICES, WEATHER, SITE_STATUS, JOBS)
OUTPUT_TOPICS = (SITE_COSTS, DISPATCH, DEAD_LETTER, PIPELINE_METRICS)
ALL_TOPICS = INPUT_TOPICS + OUTPUT_TOPICS

DEAD_JOB = "jobs-dead-letter"  # JobRecords' (flink_jobs/jvm) stand-in row for a dead-lettered job record
