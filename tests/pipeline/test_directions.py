import pytest

from pipeline import PAIRS, Direction, InputError, InputErrorCode
from pipeline.directions import pair_named


def test_six_directions_two_per_pair():
    assert len(Direction) == 6
    for pair in PAIRS:
        served = [d for d in Direction if d.pair == pair]
        assert {d.generator for d in served} == {"a2b", "b2a"}
        assert {d.model_name for d in served} == {pair.model_name}
        assert all(pair.direction(d.generator) is d for d in served)
    with pytest.raises(ValueError, match="a2b and b2a"):
        PAIRS[0].direction("ab")


def test_pair_named_finds_each_pair_and_lists_them_for_an_unknown_name():
    assert [pair_named(p.name) for p in PAIRS] == list(PAIRS)
    with pytest.raises(ValueError, match="unknown pair 'winter2spring'") as err:
        pair_named("winter2spring")
    assert all(p.name in str(err.value) for p in PAIRS)


def test_direction_facts():
    d = Direction.DAY2NIGHT
    assert (d.source, d.target, d.pair.name, d.generator) == ("day", "night", "day2night", "a2b")
    assert Direction.WINTER2SUMMER.generator == "b2a"
    assert Direction.AUTUMN2SPRING.reverse is Direction.SPRING2AUTUMN
    assert Direction.SPRING2AUTUMN.pair.interaction == "hover-focus"


def test_parse_is_forgiving_about_case_and_space():
    assert Direction.parse(" Summer2Winter ") is Direction.SUMMER2WINTER


def test_unknown_direction_lists_valid_names():
    with pytest.raises(InputError) as err:
        Direction.parse("winter2autumn")
    assert err.value.code is InputErrorCode.UNKNOWN_DIRECTION
    for d in Direction:
        assert d.value in err.value.message
