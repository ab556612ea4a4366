"""Developer tools: send sample events, listen to the result events, run the demo."""
