"""An app whose one function has a parameter no binding declares and the worker cannot supply: Microsoft's worker
library refuses to index it (FunctionLoadError), and so no function of the app runs."""
import azure.functions as func

app = func.FunctionApp()


@app.function_name("unbound")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="%SETTLE_QUEUE%", connection="ServiceBusConnection")
def unbound(msg: func.ServiceBusMessage, extra: str) -> None:
    """``extra`` has no binding and is not a settlement client."""
