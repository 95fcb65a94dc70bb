"""The outbound HTTP client: webhook deliveries (status webhooks and the dialplan's
``webhook`` verb) over one keep-alive transport, signed the same way."""
