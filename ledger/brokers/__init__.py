"""Broker routing: the port, the one router, and an adapter per broker."""
