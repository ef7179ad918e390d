"""The six translation directions and the pair model that serves each one.

Imports no TensorFlow: the web process lists and validates directions with it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pipeline.errors import InputError, InputErrorCode


@dataclass(frozen=True)
class Pair:
    """Two domains joined by one CycleGAN model (its generators map A→B and B→A)."""

    name: str
    domain_a: str
    domain_b: str
    interaction: str

    @property
    def model_name(self) -> str:
        """Registry name of the CycleGAN model trained on this pair."""
        return self.name

    @property
    def label(self) -> str:
        return f"{self.domain_a} ↔ {self.domain_b}"

    def direction(self, generator: str) -> Direction:
        """The direction that this pair's `a2b` or `b2a` generator serves."""
        if generator not in ("a2b", "b2a"):
            raise ValueError(f"a pair model's generators are a2b and b2a, not {generator!r}")
        source, target = (self.domain_a, self.domain_b) if generator == "a2b" else (self.domain_b, self.domain_a)
        return Direction(f"{source}2{target}")


DAY_NIGHT = Pair("day2night", "day", "night", "scratch")
SPRING_AUTUMN = Pair("spring2autumn", "spring", "autumn", "hover-focus")
SUMMER_WINTER = Pair("summer2winter", "summer", "winter", "scroll-reveal")
PAIRS: tuple[Pair, ...] = (DAY_NIGHT, SPRING_AUTUMN, SUMMER_WINTER)


def pair_named(name: str) -> Pair:
    """The pair whose model is called `name`, or a ValueError that lists the pairs."""
    for pair in PAIRS:
        if pair.name == name:
            return pair
    raise ValueError(f"unknown pair {name!r}; the pipeline serves: {', '.join(p.name for p in PAIRS)}")


class Direction(enum.StrEnum):
    """One way through a pair: the source domain is translated into the target domain."""

    DAY2NIGHT = "day2night"
    NIGHT2DAY = "night2day"
    SPRING2AUTUMN = "spring2autumn"
    AUTUMN2SPRING = "autumn2spring"
    SUMMER2WINTER = "summer2winter"
    WINTER2SUMMER = "winter2summer"

    @classmethod
    def parse(cls, name: str | Direction) -> Direction:
        """The direction called `name`, or an `InputError` that lists the valid names."""
        if isinstance(name, Direction):
            return name
        try:
            return cls(str(name).strip().lower())
        except ValueError:
            valid = ", ".join(d.value for d in cls)
            raise InputError(
                InputErrorCode.UNKNOWN_DIRECTION,
                f"unknown direction {name!r}; valid directions are: {valid}",
            ) from None

    @property
    def pair(self) -> Pair:
        return next(p for p in PAIRS if self.source in (p.domain_a, p.domain_b))

    @property
    def source(self) -> str:
        return self.value.split("2")[0]

    @property
    def target(self) -> str:
        return self.value.split("2")[1]

    @property
    def model_name(self) -> str:
        """Registry name of the CycleGAN model whose generator serves this direction."""
        return self.pair.model_name

    @property
    def generator(self) -> str:
        """Which of the model's two generators: `a2b` (domain A → B) or `b2a`."""
        return "a2b" if self.source == self.pair.domain_a else "b2a"

    @property
    def reverse(self) -> Direction:
        return Direction(f"{self.target}2{self.source}")

    @property
    def label(self) -> str:
        return f"{self.source} → {self.target}"

    def __str__(self) -> str:
        return self.value
