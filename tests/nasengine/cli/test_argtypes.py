"""The shared argparse value types: accepted forms and one-line rejections."""

import argparse

import pytest

from nasengine.cli.argtypes import byte_size, port, positive_float, positive_int, whole_number


def test_accepted_values() -> None:
    assert whole_number("-3") == -3 and positive_int("7") == 7 and positive_float("0.5") == 0.5
    assert port("0") == 0 and port("65535") == 65535
    assert byte_size("1000") == 1000 and byte_size("512K") == 512 * 1024 and byte_size("64MiB") == 64 << 20


@pytest.mark.parametrize("parse, text", [
    (whole_number, "1.5"), (positive_int, "0"), (positive_float, "-1"), (positive_float, "inf"),
    (positive_float, "nan"), (port, "70000"), (port, "http"), (byte_size, "0"), (byte_size, "lots"),
])
def test_rejected_values(parse, text) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected"):
        parse(text)
