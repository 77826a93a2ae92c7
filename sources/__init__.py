"""Getting data into Kafka: sample-data builder, replay (folder or S3) with fault injection,
synthetic job generator and live pollers. See data/PROVENANCE.md for the data itself."""
