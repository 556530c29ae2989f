"""argparse ``type=`` checkers for the ``localcsi`` command's flags: each returns the value it accepts, or
raises ``ArgumentTypeError`` saying what it expected."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from localcsi import logs


def log_level(value: str) -> str:
    level = value.lower()
    if level not in logs.LEVELS:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(logs.LEVELS)}")
    return level


def host_port(value: str) -> str:
    _, separator, port = value.rpartition(":")
    if not separator or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r}: expected HOST:PORT with a port from 1 to 65535")
    return value


def optional_host_port(value: str) -> str:
    return value and host_port(value)


def endpoint(value: str) -> str:
    scheme, separator, address = value.partition("://")
    if separator and scheme == "unix" and address.startswith("/"):
        return value
    if separator and scheme == "tcp":
        return f"tcp://{host_port(address)}"
    raise argparse.ArgumentTypeError(f"{value!r}: expected unix:///absolute/path or tcp://HOST:PORT")


def absolute_path(value: str) -> str:
    if not value.startswith("/") or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise argparse.ArgumentTypeError(f"{value!r}: expected an absolute path")
    return value


def optional_absolute_path(value: str) -> str:
    return value and absolute_path(value)


def int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not value.isdigit() or int(value) < minimum:
            raise argparse.ArgumentTypeError(f"{value!r}: expected a whole number, {minimum} or more")
        return int(value)

    return parse


def device_pattern(text: str) -> str:
    if not text.startswith("/dev/"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a glob of paths under /dev/")
    return text


def mount_point_pattern(text: str) -> str:
    if not text.startswith("/") or text == "/":
        raise argparse.ArgumentTypeError(f"{text!r} is not a glob of absolute paths below /")
    return text
