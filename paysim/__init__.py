"""paysim: a queueing-theory capacity simulator for payment systems."""

__version__ = "0.1.0"
