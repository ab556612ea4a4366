"""Azure Functions entry point (Python v2 programming model).

Registers the blueprints, then starts the warm-up (``shared.bootstrap.begin_warm_up``): the service SDKs, their
clients and tokens are loaded in a background thread while the host connects the triggers, so neither the host's
indexing nor the first event waits for them (``WARM_UP=false``: the first event loads them).
"""
import logging

import azure.functions as func

from functions.customer_events import bp as customer_events
from functions.drift_reconciliation import bp as drift_reconciliation
from shared.bootstrap import begin_warm_up

# azure-core logs every HTTP request and response at INFO; at the host's default level that would drown the app's
# one-line-per-step log in Application Insights. Warnings and errors still come through.
logging.getLogger("azure").setLevel(logging.WARNING)
logging.getLogger("httpx").setLevel(logging.WARNING)  # the Auth0 client's one INFO line per request, likewise

app = func.FunctionApp()
app.register_functions(customer_events)
app.register_functions(drift_reconciliation)

begin_warm_up()
