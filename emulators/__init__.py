"""Local stand-ins for the services the app calls (the "local stack").

Each stand-in speaks the documented wire contract of its service so that the app's real SDK clients
run unchanged against it over loopback. See README.md ("Local stack") for how to start and use them.
"""
