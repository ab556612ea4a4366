"""The app's own library: domain model, service layer (use cases over abstract ports) and adapters (real SDKs)."""
