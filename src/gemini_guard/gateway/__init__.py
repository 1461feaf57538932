"""The gateway (`gemini-guard serve`): one guarded Gemini endpoint for any client."""
