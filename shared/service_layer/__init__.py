"""Use cases: apply customer events through abstract ports. No SDK imports here."""
