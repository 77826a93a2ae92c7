"""GeoDispatch domain core: plain Python, no Flink import."""
