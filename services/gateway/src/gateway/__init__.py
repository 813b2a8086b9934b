"""The HTTP gateway: FastAPI in front of the gRPC services (see ``gateway.app``)."""
