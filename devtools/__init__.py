"""Developer tools: send sample events, run the demo."""
