"""Pure domain: events, profiles, naming rules, ledger records and errors. No I/O, no SDK imports."""
