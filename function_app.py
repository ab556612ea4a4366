"""Azure Functions entry point (Python v2 programming model).

Only registers blueprints. SDKs and settings are loaded on the first invocation (``shared.bootstrap``), so a cold
start pays for ``azure.functions`` and little else before the host can index the functions.
"""
import logging

import azure.functions as func

from functions.customer_events import bp as customer_events
from functions.drift_reconciliation import bp as drift_reconciliation

# azure-core logs every HTTP request and response at INFO; at the host's default level that would drown the app's
# one-line-per-step log in Application Insights. Warnings and errors still come through.
logging.getLogger("azure").setLevel(logging.WARNING)
logging.getLogger("httpx").setLevel(logging.WARNING)  # the Auth0 client's one INFO line per request, likewise

app = func.FunctionApp()
app.register_functions(customer_events)
app.register_functions(drift_reconciliation)
