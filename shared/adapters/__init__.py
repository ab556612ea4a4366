"""Adapters: the service layer's ports implemented over the real SDKs, plus settings and credentials.

Importing this package (or ``settings``) imports no SDK: each adapter module imports its SDK itself, and
``shared.bootstrap`` imports the adapter modules only when it builds the service, so a cold start pays for the SDKs
once, when the first message arrives, and not when the host indexes the functions.
"""
