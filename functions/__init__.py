"""Thin triggers: parse, call the service layer, map the outcome to what the Functions host does next."""
