"""The synthetic sequence spec of ``open_sequence``: synthetic:SEED[:FRAMES][@STYLE]."""

import pytest

from alster_mapping.data.sequences import SyntheticSequence, open_sequence, parse_synthetic_spec


def test_spec_parser_reads_seed_frames_and_style():
    assert parse_synthetic_spec("synthetic:3") == (3, 80, "classic")
    assert parse_synthetic_spec("synthetic:3", frames=12) == (3, 12, "classic")
    assert parse_synthetic_spec("synthetic:3:120") == (3, 120, "classic")
    assert parse_synthetic_spec("synthetic:3:120@shifted") == (3, 120, "shifted")
    assert parse_synthetic_spec("synthetic:0@randomized", frames=5) == (0, 5, "randomized")
    assert parse_synthetic_spec("synthetic:4:6@classic") == (4, 6, "classic")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("synthetic:3:120@fancy", "unknown style 'fancy' in synthetic:SEED\\[:FRAMES\\]\\[@STYLE\\]; STYLE is one of classic, randomized, shifted"),
        ("synthetic:3@", "unknown style ''"),
        ("synthetic:abc@shifted", "synthetic:SEED"),
        ("synthetic:3:x", "synthetic:SEED"),
        ("synthetic:3:4:5", "synthetic:SEED\\[:FRAMES\\]\\[@STYLE\\]"),
        ("synthetic:-1", "seed >= 0"),
        ("synthetic:2:0@randomized", "frames >= 1"),
    ],
)
def test_spec_parser_rejects_bad_specs_with_the_syntax_in_the_message(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_synthetic_spec(spec)
    with pytest.raises(ValueError, match=message):
        open_sequence(spec, width=32, height=24)


def test_open_sequence_builds_the_styled_world_and_names_it():
    shifted = open_sequence("synthetic:3:2@shifted", width=32, height=24)
    assert isinstance(shifted, SyntheticSequence) and len(shifted) == 2
    assert shifted.name == "synthetic:3@shifted" and shifted.style == "shifted" and shifted.world.style == "shifted"
    assert shifted.ground_truth().name == "synthetic:3@shifted"
    frame = shifted.frame(1)
    assert frame.color.shape == (24, 32, 3) and frame.intrinsics.width == 32
    # The name reads back as the same sequence.
    assert parse_synthetic_spec(shifted.name, frames=2) == (3, 2, "shifted")
    classic = SyntheticSequence(3, 2, 32, 24)
    assert classic.name == "synthetic:3" and classic.style == "classic" and classic.world.style == "classic"
    assert SyntheticSequence(3, 2, 32, 24, style="randomized").name == "synthetic:3@randomized"
