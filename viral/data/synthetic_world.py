"""The planted world of the synthetic dataset: item attributes, user tastes, and who bought what.

Items have a product type (shown in the image AND named in the text), a colour and a pattern (shown ONLY
in the image), and an age group and material (named ONLY in the text). Each user prefers one value of
type, colour, pattern and age group; a user's items are drawn without replacement with probability
rising with the number of matches, plus item popularity and a share of uniform noise. So the image
carries the strongest taste signal (colour) that no text field reveals.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viral.data.config import SyntheticConfig

TYPES = ("bottle", "cup", "bowl", "bib", "hat", "sock", "ball", "backpack")
COLOURS = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink")
PATTERNS = ("plain", "stripes", "dots", "checks")
AGES = ("newborn", "infant", "toddler", "preschool")
# The attributes users have tastes for, with the weight of a match in the item's logit.
# Colour, visible only in the image, weighs most: the visual modality must matter.
PREFERENCE_WEIGHTS = {"type": 1.0, "colour": 2.0, "pattern": 1.0, "age": 1.5}
ATTRIBUTE_VALUES = {"type": TYPES, "colour": COLOURS, "pattern": PATTERNS, "age": AGES}
IMAGE_ONLY = ("colour", "pattern")
TEXT_ONLY = ("age", "material")

# Materials that make sense per type: a text-only detail without a taste attached.
MATERIALS = {
    "bottle": ("glass", "silicone", "BPA-free plastic"),
    "cup": ("silicone", "stainless steel", "bamboo"),
    "bowl": ("bamboo", "silicone", "stainless steel"),
    "bib": ("cotton", "silicone", "bamboo"),
    "hat": ("cotton", "wool", "fleece"),
    "sock": ("cotton", "wool", "bamboo"),
    "ball": ("rubber", "fabric", "foam"),
    "backpack": ("canvas", "nylon", "cotton"),
}
BASE_PRICE = {"bottle": 12.0, "cup": 9.0, "bowl": 11.0, "bib": 8.0, "hat": 14.0, "sock": 10.0, "ball": 13.0,
              "backpack": 24.0}
BRANDS = ("Nestling", "Kiddoro", "Tiny Harbor", "Moonbeam", "Little Otter", "Pebblewood", "Sproutly",
          "Cradlecraft", "Happynest", "Wobbly Fox", "Snugglebee", "Brightpath")
MISSING_PRICE = 0.08  # share of items without a price, as in the real metadata
MISSING_BRAND = 0.05
POPULARITY_SD = 0.7  # spread of the log-popularity added to every item's logit
FIRST_DAY = 14610  # 2010-01-01 in days since the epoch
LAST_DAY = 16274  # 2014-07-23, the end of the 2014 crawl
MEAN_GAP_DAYS = 20.0
ID_ALPHABET = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


@dataclass(frozen=True)
class Items:
    asin: list[str]
    attrs: dict[str, np.ndarray]  # name in ATTRIBUTE_VALUES -> value index per item
    material: list[str]
    brand: list[str]  # "" when the item has no brand
    price: list[float | None]
    log_popularity: np.ndarray

    def __len__(self) -> int:
        return len(self.asin)

    def value(self, name: str, index: int) -> str:
        return ATTRIBUTE_VALUES[name][self.attrs[name][index]]


@dataclass(frozen=True)
class Users:
    reviewer_id: list[str]
    prefs: dict[str, np.ndarray]  # name in PREFERENCE_WEIGHTS -> preferred value index per user

    def __len__(self) -> int:
        return len(self.reviewer_id)


@dataclass(frozen=True)
class Interactions:
    user: np.ndarray  # int64 user index
    item: np.ndarray  # int64 item index
    rating: np.ndarray  # float64 in 1..5
    timestamp: np.ndarray  # int64 unix seconds (midnight UTC, like the real files)


def random_ids(rng: np.random.Generator, n: int, prefix: str, length: int) -> list[str]:
    """`n` distinct ids of `length` characters: `prefix` then upper-case letters and digits."""
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        draws = rng.integers(0, len(ID_ALPHABET), size=(n - len(ids), length - len(prefix)))
        for row in ID_ALPHABET[draws]:
            candidate = prefix + "".join(row)
            if candidate not in seen:
                seen.add(candidate)
                ids.append(candidate)
    return ids


def make_items(config: SyntheticConfig, rng: np.random.Generator) -> Items:
    n = config.n_items
    attrs = {name: rng.integers(0, len(values), size=n) for name, values in ATTRIBUTE_VALUES.items()}
    material = [MATERIALS[TYPES[t]][rng.integers(0, 3)] for t in attrs["type"]]
    brand = [BRANDS[b] for b in rng.integers(0, len(BRANDS), size=n)]
    brand = ["" if missing else name for name, missing in zip(brand, rng.random(n) < MISSING_BRAND)]
    raw_price = np.array([BASE_PRICE[TYPES[t]] for t in attrs["type"]]) * rng.lognormal(0.0, 0.3, size=n)
    price = [None if missing else round(max(2.0, round(p)) - 0.01, 2)
             for p, missing in zip(raw_price, rng.random(n) < MISSING_PRICE)]
    return Items(
        asin=random_ids(rng, n, "B0", 10),
        attrs=attrs,
        material=material,
        brand=brand,
        price=price,
        log_popularity=rng.normal(0.0, POPULARITY_SD, size=n),
    )


def make_users(config: SyntheticConfig, rng: np.random.Generator) -> Users:
    n = config.n_users
    prefs = {name: rng.integers(0, len(ATTRIBUTE_VALUES[name]), size=n) for name in PREFERENCE_WEIGHTS}
    return Users(reviewer_id=random_ids(rng, n, "A", 14), prefs=prefs)


def affinity(
    users: Users, items: Items, user_rows: np.ndarray | slice = slice(None), item_cols: np.ndarray | slice = slice(None)
) -> np.ndarray:
    """(users, items) logit of choosing each item: weighted taste matches plus log-popularity."""
    popularity = items.log_popularity[item_cols]
    logits = np.repeat(popularity[None, :], len(users.prefs["type"][user_rows]), axis=0)
    for name, weight in PREFERENCE_WEIGHTS.items():
        logits += weight * (users.prefs[name][user_rows, None] == items.attrs[name][item_cols][None, :])
    return logits


def _noisy_log_probs(logits: np.ndarray, noise: float) -> np.ndarray:
    """Row-wise log of (1 - noise) * softmax(logits) + noise * uniform."""
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return np.log((1.0 - noise) * probs + noise / logits.shape[1])


def _gumbel(rng: np.random.Generator, shape) -> np.ndarray:
    return -np.log(-np.log(rng.random(shape) + 1e-300) + 1e-300)


def draw_interactions(
    config: SyntheticConfig, users: Users, items: Items, rng: np.random.Generator, chunk_users: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's items, without replacement, by Gumbel-top-k on the noisy taste logits.

    Counts are `interactions_per_user` plus a geometric tail (mean half as many again), capped at half
    the catalogue. Returns (user index, item index) arrays, users in order."""
    n_users, n_items = len(users), len(items)
    base = config.interactions_per_user
    extra = rng.geometric(1.0 / (1.0 + base / 2.0), size=n_users) - 1
    counts = np.minimum(base + extra, max(base, n_items // 2))
    user_parts, item_parts = [], []
    for start in range(0, n_users, chunk_users):
        rows = np.arange(start, min(start + chunk_users, n_users))
        keys = _noisy_log_probs(affinity(users, items, rows), config.noise)
        keys += _gumbel(rng, keys.shape)
        top = np.argsort(-keys, axis=1, kind="stable")[:, : counts[rows].max()]
        for row, user in enumerate(rows):
            user_parts.append(np.full(counts[user], user, dtype=np.int64))
            item_parts.append(top[row, : counts[user]].astype(np.int64))
    return np.concatenate(user_parts), np.concatenate(item_parts)


def repair_item_degrees(
    users: Users, items: Items, user: np.ndarray, item: np.ndarray, rng: np.random.Generator, min_degree: int = 5
) -> tuple[np.ndarray, np.ndarray, int]:
    """Give every item at least `min_degree` distinct users, adding the users whose tastes fit it best
    (Gumbel-perturbed logits). Users only gain items, so nobody drops below their count. Returns the new
    arrays and the number of interactions added."""
    degree = np.bincount(item, minlength=len(items))
    order = np.argsort(item, kind="stable")
    bounds = np.searchsorted(item[order], np.arange(len(items) + 1))
    new_users, new_items = [], []
    for index in np.flatnonzero(degree < min_degree):
        keys = affinity(users, items, item_cols=np.array([index]))[:, 0] + _gumbel(rng, len(users))
        keys[user[order[bounds[index]: bounds[index + 1]]]] = -np.inf
        chosen = np.argsort(-keys, kind="stable")[: min_degree - degree[index]]
        new_users.append(chosen.astype(np.int64))
        new_items.append(np.full(len(chosen), index, dtype=np.int64))
    if not new_users:
        return user, item, 0
    added = sum(len(part) for part in new_users)
    return np.concatenate([user, *new_users]), np.concatenate([item, *new_items]), added


def rate_and_date(
    users: Users, items: Items, user: np.ndarray, item: np.ndarray, rng: np.random.Generator
) -> Interactions:
    """Star ratings rising with the taste match, and per-user review dates moving forward in time."""
    n_matches = np.zeros(len(user), dtype=np.int64)
    for name in PREFERENCE_WEIGHTS:
        n_matches += users.prefs[name][user] == items.attrs[name][item]
    rating = np.clip(np.rint(3.5 + 0.35 * n_matches + rng.normal(0.0, 0.8, size=len(user))), 1, 5)
    order = np.argsort(user, kind="stable")
    user, item, rating = user[order], item[order], rating[order]
    start_day = rng.integers(FIRST_DAY, LAST_DAY - 365, size=len(users))
    gaps = rng.exponential(MEAN_GAP_DAYS, size=len(user)).astype(np.int64)
    first = np.r_[True, user[1:] != user[:-1]]
    gaps[first] = 0
    # cumulative gap within each user's run: global cumsum minus the cumsum at the run's start
    cumulative = np.cumsum(gaps)
    run_start = np.maximum.accumulate(np.where(first, np.arange(len(user)), 0))
    within = cumulative - cumulative[run_start]
    day = np.minimum(start_day[user] + within, LAST_DAY)
    return Interactions(user=user, item=item, rating=rating.astype(np.float64), timestamp=day * 86400)
