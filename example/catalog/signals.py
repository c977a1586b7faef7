"""The catalogue's own signals.

- ``product_viewed``: sent by the product page with ``product``, ``user``
  (the viewer, or None when anonymous) and ``session_key`` (the anonymous
  visitor's session). The page knows nothing about what is done with views;
  receivers decide (catalog.receivers.count_view records and counts them).
- ``price_dropped``: sent in the transaction of a save that lowered a
  product's price, with ``product``, ``old_price`` and ``new_price`` (as
  text, exact: they travel to the background worker as JSON) and ``using``
  (the database of the change).
"""

from django.dispatch import Signal

product_viewed = Signal()
price_dropped = Signal()
