"""Contracts written first: each service's proto and the suite every implementation passes."""
