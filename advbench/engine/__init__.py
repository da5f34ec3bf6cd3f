"""The evaluation engine: plan (models x attacks x eps), run cells in batches, write rows."""
