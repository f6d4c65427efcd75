"""The platform self-test: a tiny upload (code, label, amount) through all six steps, with one checker or two."""
