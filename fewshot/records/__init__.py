"""The results store: runs with real columns and provenance, append-only, with schema migrations."""
