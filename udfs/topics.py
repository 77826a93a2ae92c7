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

# Rows between the job's own operators, in the shape of the raw input rows (flink_jobs/jvm):
SITE_TICK = "site-tick"  # SiteTicker's row of one site at one tick
DEAD_JOB = "jobs-dead-letter"  # JobRecords' stand-in for a dead-lettered job record
