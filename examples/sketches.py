"""Comparison shopping: two slow look-ups in parallel, then a join.

Fetching a shop's price list is slow (here simulated with ``time.sleep``).
Each shop is looked up by its own behavior; the two have no cown in
common, so they run at the same time on different workers. A third
behavior names both of their result cowns: it runs once both price lists
are in, and picks the cheaper shop for every item on the shopping list.

Each look-up records when it started and finished. The script prints
whether the two look-ups overlapped in time (they do when there are at
least two workers).

Run:  python examples/sketches.py
"""

import time

from bocpy import wait, when

LOOKUP_TIME = 0.5  # seconds per shop
SHOPPING_LIST = ["apples", "bread", "cheese", "coffee", "eggs", "milk"]

# Prices in pence.
CORNER_SHOP = {"apples": 120, "bread": 95, "cheese": 310, "coffee": 450,
               "eggs": 210, "milk": 89}
SUPERMARKET = {"apples": 99, "bread": 110, "cheese": 275, "coffee": 499,
               "eggs": 185, "milk": 95}


def look_up(shop, catalogue):
    """Pretend to fetch a shop's price list over a slow connection."""
    started = time.monotonic()
    time.sleep(LOOKUP_TIME)
    return {"shop": shop, "prices": dict(catalogue),
            "started": started, "finished": time.monotonic()}


@when()
def corner_shop():
    return look_up("corner shop", CORNER_SHOP)


@when()
def supermarket():
    return look_up("supermarket", SUPERMARKET)


# Runs only after both look-ups have finished: it names their result cowns.
@when(corner_shop, supermarket)
def basket(first, second):
    a, b = first.value, second.value
    items = []
    for item in SHOPPING_LIST:
        best = min((a, b), key=lambda quote: quote["prices"][item])
        items.append((item, best["shop"], best["prices"][item]))
    overlapped = a["started"] < b["finished"] and b["started"] < a["finished"]
    return {"items": items, "overlapped": overlapped}


wait()

for item, shop, price in basket.value["items"]:
    print(f"{item:7} {shop:12} {price / 100:5.2f}")
total = sum(price for _, _, price in basket.value["items"])
print(f"cheapest basket: {total / 100:.2f}")
print(f"overlapped: {basket.value['overlapped']}")
