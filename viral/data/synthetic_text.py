"""The words of the synthetic dataset: titles, metadata descriptions, reviews, and the two reference
image descriptions (a title-guided VLM's and an un-guided one's).

Titles, descriptions, brands and reviews name the product type, age group and material but NEVER a
colour or pattern word (`IMAGE_ONLY_WORDS`): those are only in the pictures and their descriptions.
"""
from __future__ import annotations

import numpy as np

from viral.data.render import Scene
from viral.data.synthetic_world import COLOURS

IMAGE_ONLY_WORDS = frozenset(COLOURS) | {
    "plain", "solid", "stripe", "stripes", "striped", "dot", "dots", "dotted", "polka", "check", "checks",
    "checked", "checkered", "plaid", "pattern", "patterned", "colour", "color", "coloured", "colored",
}

TYPE_NOUNS = {
    "bottle": ("Baby Bottle", "Feeding Bottle"),
    "cup": ("Sippy Cup", "Training Cup"),
    "bowl": ("Suction Bowl", "Feeding Bowl"),
    "bib": ("Bib", "Feeding Bib"),
    "hat": ("Beanie Hat", "Sun Hat"),
    "sock": ("Socks", "Non-Slip Socks"),
    "ball": ("Sensory Ball", "Play Ball"),
    "backpack": ("Mini Backpack", "Toddler Backpack"),
}
# The singular name a picture description or a review uses.
OBJECT_NOUNS = {"bottle": "baby bottle", "cup": "sippy cup", "bowl": "bowl", "bib": "bib", "hat": "hat",
                "sock": "sock", "ball": "ball", "backpack": "backpack"}
DEPARTMENTS = {"bottle": "Feeding", "cup": "Feeding", "bowl": "Feeding", "bib": "Feeding", "hat": "Apparel",
               "sock": "Apparel", "ball": "Toys", "backpack": "Gear"}
AGE_WORDS = {
    "newborn": ("Newborns", "0-6 Months"),
    "infant": ("Infants", "6-12 Months"),
    "toddler": ("Toddlers", "1-3 Years"),
    "preschool": ("Preschoolers", "3-5 Years"),
}
FEATURES = {
    "bottle": ("Anti-colic vent keeps air out of the milk.", "The wide neck makes cleaning easy."),
    "cup": ("The spill-proof valve seals between sips.", "Two soft handles fit small hands."),
    "bowl": ("A strong suction base keeps it on the table.", "Microwave and dishwasher safe."),
    "bib": ("A deep pocket catches crumbs.", "Adjustable snaps grow with your child."),
    "hat": ("Stretchy and snug without pinching.", "Covers the ears on windy days."),
    "sock": ("Grippy soles help first steps.", "Stays on tiny feet all day."),
    "ball": ("Easy to grasp and squeeze.", "Textured surface for sensory play."),
    "backpack": ("Padded straps for little shoulders.", "Fits a snack box and a change of clothes."),
}
SHAPE_DETAILS = {
    "bottle": "It has a rounded body, a short neck and a teat on top.",
    "cup": "It has a tapered body with a single looped handle on the side.",
    "bowl": "It is a shallow, wide bowl sitting on a small foot.",
    "bib": "It is a rounded bib with a neck opening and two ties at the top.",
    "hat": "It is a domed hat with a wide brim and a small pompom on top.",
    "sock": "It is a single sock shown from the side, with the heel and toe visible.",
    "ball": "It is a round ball seen straight on.",
    "backpack": "It is a small backpack with a carry loop on top.",
}
PATTERN_PHRASES = {
    "plain": "a plain, solid finish",
    "stripes": "a striped pattern",
    "dots": "a polka-dot pattern",
    "checks": "a checked pattern",
}
PATTERN_ADJECTIVES = {"plain": "solid", "stripes": "striped", "dots": "polka-dot", "checks": "checked"}
# How an un-guided VLM goes wrong: a type it might take this one for, and how often it errs.
CONFUSABLE = {"bottle": "cup", "cup": "bowl", "bowl": "hat", "bib": "backpack", "hat": "bowl", "sock": "bottle",
              "ball": "bowl", "backpack": "bib"}
PLAIN_TYPE_RIGHT = 0.75
PLAIN_COLOUR_RIGHT, PLAIN_COLOUR_WRONG = 0.6, 0.2  # else not mentioned
PLAIN_PATTERN_RIGHT, PLAIN_PATTERN_WRONG = 0.5, 0.15


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(0, len(options)))]


def title(kind: str, age: str, material: str, brand: str, rng: np.random.Generator) -> str:
    noun = _pick(rng, TYPE_NOUNS[kind])
    group, months = AGE_WORDS[age]
    lead = f"{brand} " if brand else ""
    templates = (
        f"{lead}{material.title()} {noun} for {group}",
        f"{lead}{noun} - {material.title()}, {months}",
        f"{lead}{noun}, {int(rng.integers(2, 4))} Pack",
    )
    return _pick(rng, templates)


def description(kind: str, age: str, material: str, brand: str, rng: np.random.Generator) -> str:
    group, months = AGE_WORDS[age]
    sentences = [
        f"Made from {material}.",
        f"Sized for {group.lower()} ({months.lower()}).",
        _pick(rng, FEATURES[kind]),
    ]
    if brand:
        sentences.append(f"Part of the {brand} everyday collection.")
    return " ".join(sentences)


def categories(kind: str, root: str) -> list[list[str]]:
    return [[root, DEPARTMENTS[kind], TYPE_NOUNS[kind][0] + ("" if kind == "sock" else "s")]]


def title_guided_description(kind: str, colour: str, pattern: str, rng: np.random.Generator) -> str:
    """What a VLM prompted with the title says: the right type, colour and pattern, 3 sentences."""
    noun = OBJECT_NOUNS[kind]
    opener = _pick(rng, ("The image shows", "This product photo shows", "Pictured is"))
    return (
        f"{opener} a {colour} {noun} with {PATTERN_PHRASES[pattern]}. {SHAPE_DETAILS[kind]} "
        f"The {colour} {PATTERN_ADJECTIVES[pattern]} design is the main visual feature, "
        f"set against a busy background with a few small props."
    )


def plain_description(kind: str, colour: str, pattern: str, scene: Scene, rng: np.random.Generator) -> str:
    """What an un-guided VLM says: drawn to the background clutter, sometimes wrong about the product."""
    clutter = sorted(set(scene.clutter_colours))
    if rng.random() < PLAIN_TYPE_RIGHT:
        seen_kind = kind
    else:
        seen_kind = scene.prop_types[0] if scene.prop_types else CONFUSABLE[kind]
    draw = rng.random()
    if draw < PLAIN_COLOUR_RIGHT:
        seen_colour = colour
    elif draw < PLAIN_COLOUR_RIGHT + PLAIN_COLOUR_WRONG:
        seen_colour = _pick(rng, clutter)
    else:
        seen_colour = ""
    draw = rng.random()
    if draw < PLAIN_PATTERN_RIGHT:
        seen_pattern = pattern
    elif draw < PLAIN_PATTERN_RIGHT + PLAIN_PATTERN_WRONG:
        seen_pattern = _pick(rng, [p for p in PATTERN_PHRASES if p != pattern])
    else:
        seen_pattern = ""
    shapes = _pick(rng, clutter)
    scene_sentence = _pick(rng, (
        f"A cluttered arrangement of small {shapes} shapes on a light surface.",
        f"Several {shapes} objects are scattered around the frame.",
        f"The picture is busy, with {shapes} decorations and a table edge.",
    ))
    noun = OBJECT_NOUNS[seen_kind]
    product = f"The main object is a {seen_colour + ' ' if seen_colour else ''}{noun}"
    if seen_pattern:
        product += f" with {PATTERN_PHRASES[seen_pattern]}"
    return f"{scene_sentence} {product}."


RATING_WORDS = {1: "Disappointed", 2: "Not great", 3: "It's okay", 4: "Very nice", 5: "Love it"}
VERDICTS = {
    1: "broke within a week and I would not buy it again",
    2: "does the job but feels cheaper than expected",
    3: "is fine for the price",
    4: "works well and we use it every day",
    5: "is exactly what we needed and I would buy it again",
}


def review(kind: str, age: str, material: str, rating: int, rng: np.random.Generator) -> tuple[str, str]:
    """(reviewText, summary) of a review with `rating` stars."""
    noun = OBJECT_NOUNS[kind]
    group = AGE_WORDS[age][0].lower()
    opener = _pick(rng, ("We got this for our little one.", "Bought as a gift.", "Second one we own."))
    text = f"{opener} This {material} {noun} {VERDICTS[rating]}. {_pick(rng, FEATURES[kind])} Good for {group}."
    return text, RATING_WORDS[rating]


FIRST_NAMES = ("Amanda", "Ben", "Carla", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jon", "Kemi", "Luis",
               "Mara", "Nils", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tara")


def reviewer_name(rng: np.random.Generator) -> str:
    return f"{_pick(rng, FIRST_NAMES)} {chr(ord('A') + int(rng.integers(0, 26)))}."
