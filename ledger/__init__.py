"""The write side: what happened and what may happen next."""
