"""The Streamlit monitoring page: ``app.py`` (page), ``data.py`` (topic reader and folding),
``charts.py`` (Altair charts), ``jobs_form.py`` (submit/cancel records for the ``jobs`` topic)."""
