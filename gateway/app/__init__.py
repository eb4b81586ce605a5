"""The composition root: the ``gateway`` command line (``cli``), locating and loading the
configuration (``context``, ``config``), the development TLS material (``devtls``),
logging (``logs``), process memory settings (``memory``), and the serving process
(``server``): it builds every runtime once (:class:`~gateway.app.gateway.Gateway`) and hands
each listener what it needs (``listeners``).

Layer: the top. May import every package of ``gateway`` (and function-local imports are
allowed here, to keep a command's start-up light); nothing in ``gateway`` imports it except
``gateway.__main__`` and the test kit (``gateway.testing``).
"""
