"""Azure Functions entry point (Python v2 programming model).

Only registers blueprints. SDKs and settings are loaded on the first invocation (``shared.bootstrap``), so a cold
start pays for ``azure.functions`` and little else before the host can index the functions.
"""
import azure.functions as func

from functions.customer_events import bp as customer_events

app = func.FunctionApp()
app.register_functions(customer_events)
