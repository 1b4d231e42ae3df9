"""A restaurant kitchen: behaviors that need several things at once.

Cooks, work stations and the pantry's ingredients are all cowns. Cooking a
dish is a behavior that needs its cook, every station the recipe uses and
every ingredient it takes, all at the same time. The runtime hands a dish
all of them together: two dishes never share the oven, an ingredient is
never taken twice, and nobody holds the stove while waiting for flour.
Dishes that need nothing in common are cooked in parallel.

The orders are placed in order from this thread, and dishes competing for a
cown are served in that order, so which orders run out of ingredients is
the same on every run.

Run:  python examples/cooking.py
"""

import time

from bocpy import Cown, wait, when

COOK_TIME = 0.02  # seconds per dish

#: dish -> (stations it uses, {ingredient: quantity})
RECIPES = {
    "omelette": (["stove"], {"eggs": 3, "butter": 1, "cheese": 1}),
    "pancakes": (["stove"], {"eggs": 2, "flour": 2, "milk": 2, "butter": 1}),
    "pizza": (["oven", "counter"], {"flour": 3, "tomatoes": 2, "cheese": 2}),
    "salad": (["counter"], {"tomatoes": 2, "lettuce": 1}),
    "lasagne": (["stove", "oven"], {"flour": 2, "tomatoes": 3, "cheese": 2, "milk": 1}),
    "bread": (["oven"], {"flour": 4, "butter": 1}),
}

STOCK = {"butter": 4, "cheese": 7, "eggs": 10, "flour": 16, "lettuce": 3,
         "milk": 5, "tomatoes": 11}
COOKS = ["Ana", "Bruno", "Chen"]
ORDERS = ["omelette", "pizza", "salad", "pancakes", "bread", "lasagne",
          "omelette", "salad", "pizza", "bread", "pancakes", "salad",
          "lasagne", "omelette", "pizza"]

cooks = [Cown({"name": name, "dishes": []}) for name in COOKS]
stations = {name: Cown(0) for name in ("counter", "oven", "stove")}
pantry = {name: Cown(amount) for name, amount in STOCK.items()}


def place_order(number, dish, cook):
    """Schedule order ``number`` (a ``dish``) for ``cook``; the result cown
    gets a line saying how it went."""
    needs_stations, recipe = RECIPES[dish]
    ingredients = sorted(recipe)

    # Two groups: the body receives each as a list of cowns, in this order.
    @when(cook, [stations[s] for s in needs_stations],
          [pantry[i] for i in ingredients])
    def cooked(cook, used_stations, supplies):
        missing = [name for name, supply in zip(ingredients, supplies)
                   if supply.value < recipe[name]]
        if missing:
            return f"order {number:2}: {dish:8} not made, out of {', '.join(missing)}"
        for name, supply in zip(ingredients, supplies):
            supply.value -= recipe[name]
        for station in used_stations:
            station.value += 1
        time.sleep(COOK_TIME)  # cooking takes a while
        cook.value["dishes"].append(dish)
        return f"order {number:2}: {dish:8} made by {cook.value['name']}"

    return cooked


# Orders go to the cooks in turn.
tickets = [place_order(number, dish, cooks[(number - 1) % len(cooks)])
           for number, dish in enumerate(ORDERS, start=1)]

wait()

for ticket in tickets:
    print(ticket.value)
for cook in cooks:
    print(f"{cook.value['name']} cooked: {', '.join(cook.value['dishes']) or 'nothing'}")
print("stations used:", ", ".join(f"{name} {station.value}"
                                  for name, station in stations.items()))
print("pantry left:", ", ".join(f"{name} {supply.value}"
                                for name, supply in pantry.items()))
made = sum(len(cook.value["dishes"]) for cook in cooks)
print(f"dishes made: {made} of {len(ORDERS)}")
