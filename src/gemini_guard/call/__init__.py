"""The request path at the HTTP level: routes, the guarded transport, upstream transports."""
