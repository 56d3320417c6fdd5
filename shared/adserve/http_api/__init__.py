"""The HTTP edge shared by the API handlers: error responses and gateway helpers."""
