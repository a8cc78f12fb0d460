"""Fake counterparts the checks run connectors against: the mock API, the local receiver, the fault proxy."""
