"""Everything progdel shows: tables, JSON/YAML/NDJSON output, live views."""
