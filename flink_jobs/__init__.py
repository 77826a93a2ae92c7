"""PyFlink jobs: thin wiring around udfs/ (sources, watermarks, state, timers, sinks)."""
