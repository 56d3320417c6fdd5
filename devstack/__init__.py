"""adserve's local stack: the SAM template on moto in server mode, its HTTP routes served by the real handlers."""
