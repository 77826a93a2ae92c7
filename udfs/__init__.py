"""GeoDispatch domain core: plain Python, no Flink import in the core modules."""
